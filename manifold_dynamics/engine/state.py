"""The types that the trainer (`train.py`) and the models (`models/`) share: the task on the
device, the standardiser, the scan carry of one run and the records of one epoch.

A run trains on a weighted training set: weight 1 = in T, 0 = pruned. The weights enter the
loss, the training error, the class centroids of the geometry and the standardisation
statistics (SPEC §1, recomputed on the pruned set), so runs with different pruned sets, of
any size, share one compiled program.
"""

from typing import NamedTuple, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state


class Standardiser(NamedTuple):
  """Per-input affine map x -> (x - shift) * scale (SPEC §1 standardisation)."""

  shift_N: jax.Array  # per-pixel mean of the training set
  scale_N: jax.Array  # 1 / std, 0 for pixels constant on the training set


@flax.struct.dataclass
class TrainData:
  """Device arrays of one task, shared by every run. Labels are +1 / -1 for a binary task
  (SPEC §1), else class indices in [0, K)."""

  x_train: jax.Array  # (P, N) float32 inputs, not standardised (the run's Standardiser is)
  y_train: jax.Array  # (P,) int32
  x_test: jax.Array  # (n_test, N) float32
  y_test: jax.Array  # (n_test,) int32
  # None: x holds all N inputs. Else (C,) int32: x holds only these input columns (see
  # `without_constant_inputs`); the network still has N inputs.
  columns: Optional[jax.Array] = None
  # K: labels are +1 / -1 when 2 (output 0 is +1), else class indices in [0, K).
  num_classes: int = flax.struct.field(pytree_node=False, default=2)
  # Shape of one input before flattening, e.g. (28, 28, 1); None = the flat vector (N,).
  input_shape: Optional[Tuple[int, ...]] = flax.struct.field(pytree_node=False, default=None)
  # False: the task standardised its inputs itself (--grey=sum_standardised) and the runs use
  # them as they are (an identity standardiser), rather than standardising on T (SPEC §1).
  standardise: bool = flax.struct.field(pytree_node=False, default=True)

  @classmethod
  def from_task(cls, task) -> 'TrainData':
    shape = getattr(task, 'input_shape', None)
    return cls(
        jnp.asarray(task.x_train),
        jnp.asarray(task.y_train, jnp.int32),
        jnp.asarray(task.x_test),
        jnp.asarray(task.y_test, jnp.int32),
        num_classes=int(getattr(task, 'num_classes', 2)),
        input_shape=None if shape is None else tuple(int(d) for d in shape),
        standardise=bool(getattr(task, 'standardise', True)),
    )

  @property
  def shape_of_input(self) -> Tuple[int, ...]:
    """One input's shape as a model sees it."""
    return self.input_shape or (self.x_train.shape[1],)

  @property
  def num_examples(self) -> int:
    return self.x_train.shape[0]

  def without_constant_inputs(self, stats: Standardiser) -> 'TrainData':
    """The same task with the input columns that every run's standardiser scales by 0 left
    out of x_train and x_test (pixels constant on the training set: 115 of 784 on the MNIST
    defaults). They standardise to 0 and contribute exactly nothing to any product, so
    training is unchanged while every first-layer product shrinks; the parameters keep all N
    rows (the optimiser still updates the unused ones, e.g. weight decay). `stats` holds the
    standardisers of every run, (N,) or (runs, N)."""
    if self.columns is not None:
      raise ValueError('constant inputs were already left out')
    used = np.flatnonzero(np.any(np.atleast_2d(np.asarray(stats.scale_N)) != 0, axis=0))
    if len(used) == self.x_train.shape[1]:
      return self
    columns = jnp.asarray(used, jnp.int32)
    return self.replace(
        x_train=self.x_train[:, columns],
        x_test=self.x_test[:, columns],
        columns=columns,
        input_shape=self.shape_of_input,  # the network's inputs, all N of them
    )


def targets(y: jax.Array, num_classes: int) -> jax.Array:
  """Output unit of each label: +1 -> 0 and -1 -> 1 for a binary task, else y itself."""
  return (y < 0).astype(jnp.int32) if num_classes == 2 else y


def run_standardiser(data: TrainData, w: jax.Array) -> Standardiser:
  """The standardiser of runs weighted by w ((P,), or (runs, P) for one per run): the
  statistics of the weighted training set, or the identity for a task's own inputs."""
  if data.standardise:
    stats = standardisers if w.ndim == 2 else weighted_standardiser
    return stats(data.x_train, w)
  shape = w.shape[:-1] + (data.x_train.shape[1],)
  return Standardiser(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))


def standardisers(x_PxN: jax.Array, w_SxP: jax.Array) -> Standardiser:
  """One standardiser per row of weights, computed one at a time (lax.map), so that memory
  holds one (P, N) temporary rather than one per run."""
  return jax.lax.map(lambda w_P: weighted_standardiser(x_PxN, w_P), w_SxP)


def weighted_standardiser(x_PxN: jax.Array, w_P: jax.Array) -> Standardiser:
  """Mean and 1/std per input over the examples with weight > 0 (weighted); pixels constant
  on that set get scale 0, so they standardise to 0, never to inf or NaN."""
  w_P = w_P / jnp.sum(w_P)
  mean_N = w_P @ x_PxN
  var_N = jnp.sum(w_P[:, None] * jnp.square(x_PxN - mean_N[None, :]), axis=0)
  in_set = (w_P > 0)[:, None]
  constant_N = jnp.max(jnp.where(in_set, x_PxN, -jnp.inf), axis=0) == jnp.min(
      jnp.where(in_set, x_PxN, jnp.inf), axis=0
  )
  safe_var = jnp.where(constant_N, 1.0, var_N)
  return Standardiser(mean_N, jnp.where(constant_N, 0.0, jax.lax.rsqrt(safe_var)))


@flax.struct.dataclass
class RunState:
  """The scan carry of one run."""

  train: train_state.TrainState  # parameters, optimiser state, step
  weights: jax.Array  # (P,) float32, 1 = in the training set, 0 = pruned
  standardiser: Standardiser  # statistics of the weighted training set
  # Per-example difficulty scores of the run so far (cfg.scores, `difficulty.py`), or None.
  scores: Optional[dict] = None
  # Key of the run's mini-batch permutations (folded with the epoch); None in full batch,
  # which draws nothing.
  key: Optional[jax.Array] = None


@flax.struct.dataclass
class EpochRecord:
  """Observables of one seed at one epoch (leading axes added by scan and vmap). A binary task
  records R+, R-, D; a K-class one R_mean, D_mean, R_class, D_class (SPEC §8)."""

  loss: jax.Array  # mean cross-entropy over the training set
  train_error: jax.Array  # fraction of the training set misclassified
  test_error: jax.Array  # fraction of the test set misclassified
  mistakes_packed: jax.Array  # (ceil(P / 8),) uint8: np.packbits of the misclassified mask
  R_plus: Optional[jax.Array] = None  # gyration radius of M+
  R_minus: Optional[jax.Array] = None  # gyration radius of M-
  D: Optional[jax.Array] = None  # distance between the class centroids
  R_mean: Optional[jax.Array] = None  # mean over classes of R_k
  D_mean: Optional[jax.Array] = None  # mean over class pairs of D_kl
  R_class: Optional[jax.Array] = None  # (K,) R_k
  D_class: Optional[jax.Array] = None  # (K (K - 1) / 2,) D_kl, k < l
  test_error_class: Optional[jax.Array] = None  # (K,) test error of each class
  # {observable: (layers,)} of every measured layer (cfg.layers other than 'first'), the
  # first one the headline; else None.
  layers: Optional[dict] = None
