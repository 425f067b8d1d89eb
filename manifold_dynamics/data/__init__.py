"""Data layer: dataset registry, original-format readers, registry fetchers, binary task."""

from manifold_dynamics.data.cache import default_cache_root, fetch
from manifold_dynamics.data.registry import DATASETS, DatasetInfo, get_info
from manifold_dynamics.data.sources import RawSplits, load_raw
from manifold_dynamics.data.task import Task, load_task, make_task
