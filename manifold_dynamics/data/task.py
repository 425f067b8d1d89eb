"""The binary task of SPEC §1: a slice T of the train split, even/odd labels.

Images are flattened to N = rows * cols inputs on [0, 1] (RGB averaged over the channels to
grey) and labels become y = +1 for even classes and -1 for odd ones. Every pixel is then
standardised with the mean and std of the (possibly pruned) training set, applied to it and
to the test set; pixels constant on it map to 0, never to inf or NaN. The training engine does
that itself, per run (`train.weighted_standardiser`), so that pruned sets recompute their own
statistics; `standardise` here is the float64 host reference, for checks and for users who
want the standardised arrays.
"""

from typing import Callable, NamedTuple, Optional

import numpy as np

from manifold_dynamics.config import DataConfig
from manifold_dynamics.data import sources
from manifold_dynamics.data.registry import get_info
from manifold_dynamics.errors import UserError


class Task(NamedTuple):
  """Arrays of one binary task, ready for training."""

  x_train: np.ndarray  # (P, N) float32 grey inputs on [0, 1] (not standardised)
  y_train: np.ndarray  # (P,) int32, +1 (even class) or -1 (odd class)
  x_test: np.ndarray  # (n_test, N) float32 on [0, 1]
  y_test: np.ndarray  # (n_test,) int32, +1 / -1
  train_indices: np.ndarray  # (P,) int64, index of each example of T in the train split
  classes_train: Optional[np.ndarray] = None  # (P,) original class of each example of T


def to_grey_inputs(images: np.ndarray) -> np.ndarray:
  """uint8 images (n, rows, cols[, 3]) -> float32 (n, rows*cols) on [0, 1], RGB averaged."""
  x = images.astype(np.float32) / 255.0
  if x.ndim == 4:
    x = x.mean(axis=-1)
  return x.reshape(len(x), -1)


def parity_labels(classes: np.ndarray) -> np.ndarray:
  """+1 for even classes (0, 2, 4, 6, 8), -1 for odd ones."""
  return np.where(np.asarray(classes) % 2 == 0, 1, -1).astype(np.int32)


def standardise(x_train: np.ndarray, *others: np.ndarray):
  """Per-pixel (x - mean) / std with the statistics of x_train; constant pixels -> 0."""
  mean = x_train.mean(axis=0, dtype=np.float64)
  std = x_train.std(axis=0, dtype=np.float64)
  inv = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
  scaled = [((x - mean) * inv).astype(np.float32) for x in (x_train,) + others]
  return scaled, mean.astype(np.float32), std.astype(np.float32)


def permute_labels(task: Task, rng: np.random.Generator):
  """The randomised-labels control (SPEC §1): the labels of T permuted at random, so the class
  counts are kept and every input keeps its image. Test labels stay true. Returns the new task
  and the permutation (new y_train = old y_train[permutation])."""
  permutation = rng.permutation(len(task.y_train))
  return task._replace(y_train=task.y_train[permutation]), permutation


LABEL_NOISE_SEED = 0  # the flipped examples depend on P and f only


def flipped_indices(num_examples: int, fraction: float) -> np.ndarray:
  """Sorted indices into T of the round(fraction * P) examples whose label --label_noise
  flips: a fixed draw, so every run (and every seed) of one slice shares the noisy task."""
  count = int(round(fraction * num_examples))
  rng = np.random.default_rng(LABEL_NOISE_SEED)
  return np.sort(rng.choice(num_examples, count, replace=False))


def flip_labels(task: Task, fraction: float):
  """The task with the binary labels of `flipped_indices` negated (the test set untouched),
  and those indices."""
  flipped = flipped_indices(len(task.y_train), fraction)
  y = task.y_train.copy()
  y[flipped] = -y[flipped]
  return task._replace(y_train=y), flipped


def slice_indices(n_available: int, train_size: int, subset_index: int, name: str):
  """Indices [k*P, (k+1)*P) of the k-th non-overlapping slice, or a one-line error."""
  start, stop = subset_index * train_size, (subset_index + 1) * train_size
  if stop > n_available:
    most = n_available // train_size
    raise UserError(
        f'--train_size={train_size} with --subset_index={subset_index} needs '
        f'{stop} training examples but {name} has {n_available}; use '
        f'--train_size <= {n_available // (subset_index + 1)} or '
        f'--subset_index < {most}.'
        if most
        else f'--train_size={train_size} exceeds the {n_available} training examples of '
        f'{name}; use --train_size <= {n_available}.'
    )
  return np.arange(start, stop)


def make_task(
    raw: sources.RawSplits, train_size: int, subset_index: int = 0, name: str = 'dataset'
) -> Task:
  """The binary task of slice `subset_index` of size `train_size`."""
  idx = slice_indices(len(raw.x_train), train_size, subset_index, name)
  return Task(
      to_grey_inputs(raw.x_train[idx]),
      parity_labels(raw.y_train[idx]),
      to_grey_inputs(raw.x_test),
      parity_labels(raw.y_test),
      idx,
      np.asarray(raw.y_train[idx]),
  )


def load_task(cfg: DataConfig, cache_root: str = None, log: Callable[[str], None] = print) -> Task:
  """Loads dataset `cfg.dataset` from its source and builds the binary task of `cfg`."""
  info = get_info(cfg.dataset)
  if cfg.train_size > info.train_examples:
    raise UserError(
        f'--train_size={cfg.train_size} exceeds the {info.train_examples} '
        f'training examples of {cfg.dataset}; use --train_size <= '
        f'{info.train_examples}.'
    )
  raw = sources.load_raw(cfg.dataset, cfg.data_dir, cfg.data_source, cache_root, log)
  task = make_task(raw, cfg.train_size, cfg.subset_index, cfg.dataset)
  if cfg.label_noise:
    task, flipped = flip_labels(task, cfg.label_noise)
    log(f'label noise: {len(flipped)} of {len(task.y_train)} training labels flipped')
  return task
