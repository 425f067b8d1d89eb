"""The records of a run, as host NumPy arrays: the `History` of every epoch and its observables.

This is what a finished run leaves behind (see `io.py` for the files). It is readable without
JAX or Flax: the engine (`engine/train.py`) fills it, the analysis (`analysis/`) reads it.

The observables (SPEC §4, §8): a binary task records R+, R- and D; a K-class one R_mean and
D_mean (the headline curves) and the per-class R_k and D_kl. `SIGN` says which way each goes
at the inversion: radii through a minimum, centroid distances through a maximum.
"""

import dataclasses
from typing import Any, NamedTuple, Optional

import numpy as np

DEFAULT_DELTA = 0.01  # tolerance of the inversion test, in radius units
# t*: the global extremum (SPEC §5), the first confirmed one, or the first one after an initial
# transient (SPEC §8; records/readings.py).
RULES = ('global', 'first', 'after_transient')
DEFAULT_RHO = 0.2  # relative criterion: a rise of 20% of the drop before the extremum (SPEC §8)
OBSERVABLES = ('R_plus', 'R_minus', 'D')  # a binary task's headline curves
# Suffix of a measured layer's name when its feature map is averaged over space (SPEC §8).
POOLED = ':pooled'
MULTICLASS_OBSERVABLES = ('R_mean', 'D_mean')  # K > 2 classes (SPEC §8)
# Extremum at the inversion: radii go through a minimum, centroid distances through a maximum.
SIGN = {
    'R_plus': 1.0,
    'R_minus': 1.0,
    'D': -1.0,
    'R_mean': 1.0,
    'D_mean': -1.0,
    'R_class': 1.0,
    'D_class': -1.0,
}


def observables(binary: bool = True):
  """The headline curves of a run: R+, R-, D for a binary task, R_mean, D_mean for K > 2.
  phi is the mean training error at their t*; the stragglers are read at the first one's."""
  return OBSERVABLES if binary else MULTICLASS_OBSERVABLES


@dataclasses.dataclass
class History:
  """Host arrays of a finished (or stopped) run; every array has leading axes (seeds, epochs+1)."""

  R_plus: Optional[np.ndarray]  # binary tasks: R+, R-, D (SPEC §4); None for K > 2
  R_minus: Optional[np.ndarray]
  D: Optional[np.ndarray]
  loss: np.ndarray
  train_error: np.ndarray
  test_error: np.ndarray
  mistakes_packed: np.ndarray  # (seeds, epochs + 1, ceil(P / 8)) uint8
  num_examples: int  # P, to unpack the masks
  # (seeds, epochs + 1, layers): the observables of every measured layer (cfg.layers other
  # than 'first'), or None
  layer_R_plus: Optional[np.ndarray] = None
  layer_R_minus: Optional[np.ndarray] = None
  layer_D: Optional[np.ndarray] = None
  # K > 2 classes (SPEC §8): R_mean, D_mean (seeds, epochs + 1), R_class (.., K) and D_class
  # (.., K (K - 1) / 2, pairs k < l); None for a binary task.
  R_mean: Optional[np.ndarray] = None
  D_mean: Optional[np.ndarray] = None
  R_class: Optional[np.ndarray] = None
  D_class: Optional[np.ndarray] = None
  test_error_class: Optional[np.ndarray] = None  # (seeds, epochs + 1, K), NaN where skipped
  layer_R_mean: Optional[np.ndarray] = None
  layer_D_mean: Optional[np.ndarray] = None

  ARRAYS = ('R_plus', 'R_minus', 'D', 'loss', 'train_error', 'test_error')
  MULTICLASS_ARRAYS = ('R_mean', 'D_mean', 'R_class', 'D_class', 'test_error_class')
  LAYER_ARRAYS = ('layer_R_plus', 'layer_R_minus', 'layer_D', 'layer_R_mean', 'layer_D_mean')

  @property
  def observables(self):
    """The headline curves: R_plus, R_minus, D for a binary task, else R_mean, D_mean."""
    return observables(binary=self.R_plus is not None)

  def arrays(self) -> dict:
    """{name: array} of every array this history holds (ARRAYS, LAYER_ARRAYS, masks)."""
    names = self.ARRAYS + self.MULTICLASS_ARRAYS + self.LAYER_ARRAYS + ('mistakes_packed',)
    return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

  @property
  def num_seeds(self) -> int:
    return self.loss.shape[0]

  @property
  def num_epochs(self) -> int:
    """Number of updates recorded (the last epoch index)."""
    return self.loss.shape[1] - 1

  def select(self, seeds) -> 'History':
    """The history of some seeds (runs) only: `seeds` indexes the leading axis."""
    return dataclasses.replace(self, **{k: v[seeds] for k, v in self.arrays().items()})

  def at_layer(self, layer: int) -> 'History':
    """This history with the observables of measured layer `layer` (an index into the layer
    arrays) as its headline curves, and no layer arrays."""
    if self.layer_R_plus is None and self.layer_R_mean is None:
      raise ValueError('this history has no per-layer observables (run with --layers=all).')
    views = {
        k[len('layer_') :]: getattr(self, k)[..., layer]
        for k in self.LAYER_ARRAYS
        if getattr(self, k) is not None
    }
    return dataclasses.replace(self, **views, **{k: None for k in self.LAYER_ARRAYS})

  def mistakes(self, epoch=slice(None)) -> np.ndarray:
    """Boolean misclassification masks (seeds, [epochs,] P) at `epoch` (index or slice)."""
    return np.unpackbits(self.mistakes_packed[:, epoch], axis=-1, count=self.num_examples).astype(
        bool
    )

  @classmethod
  def from_records(cls, records, num_examples: int) -> 'History':
    """The History of host EpochRecord arrays (leading axes (seeds, epochs))."""
    return cls(**record_arrays(records), num_examples=num_examples)

  def diverged_epochs(self, factor: float = np.inf) -> np.ndarray:
    """(seeds,) first epoch with a non-finite observable or a loss above `factor` times the
    initial loss, or -1 where there is none (the test error is NaN by design on the epochs
    that cfg.test_every skips, so it is not looked at)."""
    ok = np.all(
        [
            np.isfinite(v).reshape(v.shape[:2] + (-1,)).all(-1)
            for k, v in self.arrays().items()
            if k in self.ARRAYS + self.MULTICLASS_ARRAYS
            and k not in ('test_error', 'test_error_class')
        ],
        axis=0,
    )
    with np.errstate(invalid='ignore'):
      ok &= ~(self.loss > factor * self.loss[:, :1])
    return np.where(ok.all(axis=1), -1, np.argmin(ok, axis=1))


def record_arrays(records) -> dict:
  """{History field: host array} of EpochRecord arrays (leading axes (seeds, epochs)): its
  observables by name, those of the measured layers as layer_<name>."""
  arrays = {
      f.name: np.asarray(getattr(records, f.name))
      for f in dataclasses.fields(records)
      if f.name != 'layers' and getattr(records, f.name) is not None
  }
  for k, v in (records.layers or {}).items():
    arrays[f'layer_{k}'] = np.asarray(v)
  for k in ('R_plus', 'R_minus', 'D'):  # positional fields of History
    arrays.setdefault(k, None)
  return arrays


class Resumed(NamedTuple):
  """Where a store left a run (`MemoryStore.resume`)."""

  state: Any  # train.RunState of host arrays, cfg.seeds runs
  epochs: int  # updates done
  chunk: Optional[int]  # epochs per chunk of the interrupted run
  observables: dict  # the headline curves and 'loss': (seeds, epochs) so far
  complete: bool  # the history is finished (the final observation written)
