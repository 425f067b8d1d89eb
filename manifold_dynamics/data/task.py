"""The task of a run: a slice T of the train split and its labels (SPEC §1 and §8).

Images are flattened to N = rows * cols inputs on [0, 1] (RGB averaged over the channels to
grey); `Task.input_shape` keeps their shape (rows, cols, 1), which convolutional models see
(`contract.py`), while the MLP reads the flat vector. The labels depend on the task (TASKS):

- 'parity' (the paper's): y = +1 for even classes and -1 for odd ones;
- 'pair:A,B': only the examples of classes A and B, y = +1 for A and -1 for B;
- 'classes': every class, y = the class index in [0, K), K-way softmax. With K = 2 the labels
  are +1 / -1 as above (class 0 is +1), so every binary task shares one label convention and
  one engine path (SPEC §8: the geometry of K = 2 is R+, R-, D).

Any arrays become a task with `Task.from_arrays` (or `--dataset=npz:PATH`), any TFDS image
classification dataset with `--dataset=tfds:NAME` (`sources.load_tfds_by_name`). Every pixel is then
standardised with the mean and std of the (possibly pruned) training set, applied to it and
to the test set; pixels constant on it map to 0, never to inf or NaN. The training engine does
that itself, per run (`train.weighted_standardiser`), so that pruned sets recompute their own
statistics; `standardise` here is the float64 host reference, for checks and for users who
want the standardised arrays.
"""

from typing import Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np

from manifold_dynamics.data import sources, synthetic
from manifold_dynamics.data.registry import TASKS, get_info, parse_task  # noqa: F401
from manifold_dynamics.errors import UserError


class Task(NamedTuple):
  """Arrays of one task, ready for training."""

  x_train: np.ndarray  # (P, N) float32 inputs, flattened (not standardised)
  y_train: np.ndarray  # (P,) int32: +1 / -1 when num_classes == 2, else class in [0, K)
  x_test: np.ndarray  # (n_test, N) float32
  y_test: np.ndarray  # (n_test,) int32, as y_train
  train_indices: np.ndarray  # (P,) int64, index of each example of T in the train split
  classes_train: Optional[np.ndarray] = None  # (P,) original class of each example of T
  num_classes: int = 2  # K, outputs of the network
  input_shape: Optional[Tuple[int, ...]] = None  # shape of one input before flattening
  # What is known of each example of T, {name: (P,) array} (synthetic data, flipped labels),
  # and of the data set, {name: number} (e.g. the Bayes error); None for real data.
  truth: Optional[Dict[str, np.ndarray]] = None
  known: Optional[Dict[str, float]] = None
  # False: the inputs are standardised here (GREY 'sum_standardised') and train as they are.
  standardise: bool = True

  @classmethod
  def from_arrays(
      cls,
      x_train,
      y_train,
      x_test,
      y_test,
      task: str = 'parity',
      train_size: Optional[int] = None,
      subset_index: int = 0,
      name: str = 'arrays',
  ) -> 'Task':
    """The task of any arrays: inputs (n, ...) of any shape (images (n, H, W) gain a channel
    axis), integer labels (n,). T is slice `subset_index` of size `train_size` (default: the
    whole train split) after the task's selection of examples; see TASKS."""
    return task_from_arrays(
        sources.RawSplits(*(np.asarray(a) for a in (x_train, y_train, x_test, y_test)), grey=False),
        task,
        train_size,
        subset_index,
        name,
    )


# How RGB images become one grey value per pixel (SPEC §8): 'mean' averages the channels on
# [0, 1] (the paper's words; the runs then standardise each pixel on T), 'sum_standardised'
# standardises each channel of each pixel on T and sums the three (the authors' notebook: pixel
# std up to 3, used as they are); 'rgb' keeps the three channels (inputs (H, W, 3), on [0, 1]).
GREY = ('mean', 'sum_standardised', 'rgb')


def sum_standardised(train_images: np.ndarray, *others: np.ndarray):
  """uint8 RGB images -> float32 (n, rows*cols): each channel of each pixel standardised with
  the statistics of `train_images`, then the three channels summed."""
  flat = [
      x.reshape(len(x), -1, x.shape[-1]).astype(np.float32) / 255.0
      for x in (train_images,) + others
  ]
  scaled, _, _ = standardise(*(f.reshape(len(f), -1) for f in flat))
  return [x.reshape(len(x), -1, 3).sum(axis=-1) for x in scaled]


def task_from_arrays(
    raw: sources.RawSplits,
    task: str = 'parity',
    train_size: Optional[int] = None,
    subset_index: int = 0,
    name: str = 'arrays',
    grey: str = 'mean',
) -> Task:
  """The task `task` of both splits: its examples selected, T sliced, its labels made (see
  TASKS), every bad input a one-line error."""
  kind, pair = parse_task(task)
  x_train, y_train, x_test, y_test = raw[:4]
  for x, y, split in ((x_train, y_train, 'train'), (x_test, y_test, 'test')):
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
      raise UserError(
          f'{name}: the {split} inputs {x.shape} and labels {y.shape} disagree; '
          f'inputs must be (n, ...) and labels (n,).'
      )
    if not np.issubdtype(y.dtype, np.integer):
      raise UserError(f'{name}: the {split} labels are {y.dtype}; labels must be integers.')
  if x_train.shape[1:] != x_test.shape[1:]:
    raise UserError(
        f'{name}: train inputs are {x_train.shape[1:]} but test inputs {x_test.shape[1:]}.'
    )
  if kind == 'pair':
    for c in pair:
      if not np.any(y_train == c):
        raise UserError(f'--task={task}: class {c} has no example in the train split of {name}.')
    keep_train, keep_test = np.isin(y_train, pair), np.isin(y_test, pair)
  else:
    keep_train, keep_test = np.ones(len(y_train), bool), np.ones(len(y_test), bool)
  available = np.flatnonzero(keep_train)
  size = len(available) if train_size is None else train_size
  idx = available[slice_indices(len(available), size, subset_index, name)]
  test_idx = np.flatnonzero(keep_test)
  if grey != 'mean' and not (raw.grey and x_train.ndim == 4 and x_train.shape[-1] == 3):
    raise UserError(
        f'--grey={grey} applies to the channels of RGB images; {name} is not an RGB image '
        f'set. Use --grey=mean.'
    )
  if grey == 'sum_standardised':
    xs_train, xs_test = sum_standardised(x_train[idx], x_test[test_idx])
  elif grey == 'rgb':
    xs_train, xs_test = (
        _float_inputs(x) / np.float32(255.0) for x in (x_train[idx], x_test[test_idx])
    )
  else:
    to_inputs = to_grey_inputs if raw.grey else _float_inputs
    xs_train, xs_test = to_inputs(x_train[idx]), to_inputs(x_test[test_idx])
  for x, split in ((xs_train, 'training set T'), (xs_test, 'test set')):
    if not np.all(np.isfinite(x)):
      raise UserError(f'{name}: the {split} holds NaN or inf inputs; clean them first.')
  classes, classes_test = np.asarray(y_train[idx]), np.asarray(y_test[test_idx])
  if kind == 'parity':
    y, y_t, num_classes = parity_labels(classes), parity_labels(classes_test), 2
  elif kind == 'pair':
    y, y_t, num_classes = _pm(classes == pair[0]), _pm(classes_test == pair[0]), 2
  else:
    num_classes = int(max(classes.max(), classes_test.max(initial=0))) + 1
    low = min(classes.min(), classes_test.min(initial=0))
    if low < 0:
      raise UserError(
          f'{name}: --task=classes needs labels in [0, K); found label {low}. Map the labels '
          f'to 0..K-1 first.'
      )
    empty = np.setdiff1d(np.arange(num_classes), classes)
    if len(empty):
      raise UserError(
          f'{name}: class {empty[0]} of [0, {num_classes}) has no example in T (P={len(idx)}); '
          f'use a larger --train_size or map the labels to 0..K-1 without gaps.'
      )
    if num_classes == 2:
      y, y_t = _pm(classes == 0), _pm(classes_test == 0)
    else:
      y, y_t = classes.astype(np.int32), classes_test.astype(np.int32)
  if len(np.unique(y)) < 2:
    raise UserError(
        f'{name}: every example of T (P={len(idx)}) has the same label; use a larger --train_size.'
    )
  shape = tuple(x_train.shape[1:])
  if raw.grey and grey != 'rgb':
    shape = shape[:2] + (1,)  # channels averaged to grey
  elif len(shape) == 2:
    shape = shape + (1,)  # images (H, W) gain a channel axis
  own = grey == 'sum_standardised'
  return Task(xs_train, y, xs_test, y_t, idx, classes, num_classes, shape, standardise=not own)


def _pm(first: np.ndarray) -> np.ndarray:
  return np.where(first, 1, -1).astype(np.int32)


def _float_inputs(x: np.ndarray) -> np.ndarray:
  return np.asarray(x, np.float32).reshape(len(x), -1)


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
# How a flipped label of K > 2 classes changes (SPEC §9): to a uniformly random other class, or
# class k to class k + 1 mod K (each class's flips to one other class).
NOISE_KINDS = ('symmetric', 'class_conditional')
SPLITS = ('train', 'test')  # the split T is drawn from


def flipped_indices(num_examples: int, fraction: float) -> np.ndarray:
  """Sorted indices into T of the round(fraction * P) examples whose label --label_noise
  flips: a fixed draw, so every run (and every seed) of one slice shares the noisy task."""
  count = int(round(fraction * num_examples))
  rng = np.random.default_rng(LABEL_NOISE_SEED)
  return np.sort(rng.choice(num_examples, count, replace=False))


def flip_labels(task: Task, fraction: float, kind: str = 'symmetric'):
  """The task with the labels of `flipped_indices` changed (the test set untouched), and those
  indices: a binary label negated; a class of K > 2 moved to a uniformly random other class
  (`kind` 'symmetric', a fixed draw) or to the next one, k + 1 mod K ('class_conditional')."""
  flipped = flipped_indices(len(task.y_train), fraction)
  y = task.y_train.copy()
  if task.num_classes == 2:
    y[flipped] = -y[flipped]
  elif kind == 'class_conditional':
    y[flipped] = (y[flipped] + 1) % task.num_classes
  else:  # an offset of 1..K-1 from the true class: every other class equally likely
    rng = np.random.default_rng(LABEL_NOISE_SEED + 1)
    y[flipped] = (y[flipped] + rng.integers(1, task.num_classes, len(flipped))) % task.num_classes
  return task._replace(y_train=y), flipped


def as_training_split(raw: sources.RawSplits, split: str) -> sources.RawSplits:
  """The splits with `split` as the one T is drawn from: the test split trains, and the first
  len(test) examples of the train split test."""
  if split == 'train':
    return raw
  n = len(raw.y_test)
  return raw._replace(
      x_train=raw.x_test, y_train=raw.y_test, x_test=raw.x_train[:n], y_test=raw.y_train[:n]
  )


def read_labels(spec: str, split_labels: np.ndarray, split: str = 'train'):
  """(labels, known wrong) of a label file `spec` (PATH.npy or PATH.npz:KEY) for a split whose
  own labels are `split_labels`: one integer per example, in the split's order; a
  'clean_label' array in the same .npz must equal `split_labels` (else the file is of another
  order or data set), and the examples whose label differs from it are the known wrong ones
  (None without it). Every mismatch is a one-line error."""
  path, _, key = (
      spec.partition(':') if spec.rsplit('.', 1)[-1].startswith('npz') else (spec, '', '')
  )
  try:
    with np.load(path, allow_pickle=False) as store:
      if isinstance(store, np.ndarray):
        labels, clean = store, None
      else:
        if not key or key not in store.files:
          raise UserError(
              f'--labels={spec}: name an array of {path} after a colon ({", ".join(store.files)}).'
          )
        labels = store[key]
        clean = store['clean_label'] if 'clean_label' in store.files else None
  except (OSError, ValueError) as e:
    raise UserError(f'--labels={spec}: cannot read {path} ({e}).') from None
  n = len(split_labels)
  if labels.ndim != 1 or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
    raise UserError(
        f'--labels={spec} holds {labels.dtype}{labels.shape}; the {split} split needs one '
        f'integer label per example ({n}), in its order.'
    )
  if clean is not None:
    if clean.shape != (n,) or not np.array_equal(clean, split_labels):
      raise UserError(
          f"--labels={spec}: its clean_label does not match the {split} split's labels "
          f'({int(np.sum(clean != split_labels)) if clean.shape == (n,) else "wrong length"}); '
          'the file is in another order or of another data set.'
      )
    return labels.astype(np.int64), labels != clean
  return labels.astype(np.int64), None


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
    raw: sources.RawSplits,
    train_size: int,
    subset_index: int = 0,
    name: str = 'dataset',
    task: str = 'parity',
    grey: str = 'mean',
) -> Task:
  """The task `task` (TASKS) of slice `subset_index` of size `train_size`, RGB greyed by
  `grey` (GREY)."""
  return task_from_arrays(raw, task, train_size, subset_index, name, grey)


def load_task(cfg, cache_root: str = None, log: Callable[[str], None] = print) -> Task:
  """Loads dataset `cfg.dataset` (a `config.DataConfig`) from its source (a registry name,
  tfds:NAME or npz:PATH) and builds the task of `cfg`; `log=None` logs nothing."""
  log = log or (lambda _: None)
  if cfg.dataset == 'arrays':
    raise UserError(
        "dataset 'arrays' is a Task built in Python (Task.from_arrays): pass it to the study, "
        'or save the arrays as an .npz and use --dataset=npz:PATH.'
    )
  truth = known = None
  if cfg.dataset.startswith(synthetic.PREFIX):
    examples = (cfg.subset_index + 1) * cfg.train_size
    raw, truth, known = synthetic.generate(cfg.dataset, cfg.synthetic_params(), examples)
  elif cfg.dataset.startswith(('tfds:', 'npz:')):
    kind, _, where = cfg.dataset.partition(':')
    load = sources.load_tfds_by_name if kind == 'tfds' else sources.load_npz
    raw = load(where, cfg.data_dir) if kind == 'tfds' else load(where)
  else:
    info = get_info(cfg.dataset)
    available = info.train_examples if cfg.train_split == 'train' else info.test_examples
    if cfg.train_size > available:
      raise UserError(
          f'--train_size={cfg.train_size} exceeds the {available} examples of the '
          f'{cfg.train_split} split of {cfg.dataset}; use --train_size <= {available}.'
      )
    raw = sources.load_raw(cfg.dataset, cfg.data_dir, cfg.data_source, cache_root, log)
  raw = as_training_split(raw, cfg.train_split)
  wrong = None
  if cfg.labels:
    given, wrong = read_labels(cfg.labels, np.asarray(raw.y_train), cfg.train_split)
    raw = raw._replace(y_train=given)
  task = make_task(raw, cfg.train_size, cfg.subset_index, cfg.dataset, cfg.task, cfg.grey)
  if truth is not None:
    task = task._replace(truth={k: v[task.train_indices] for k, v in truth.items()}, known=known)
  if wrong is not None:  # the examples of T whose given label is known to be wrong
    task = task._replace(truth={**(task.truth or {}), 'mislabelled': wrong[task.train_indices]})
  if cfg.label_noise:
    task, flipped = flip_labels(task, cfg.label_noise, cfg.label_noise_kind)
    mask = np.zeros(len(task.y_train), bool)
    mask[flipped] = True
    task = task._replace(truth={**(task.truth or {}), 'flipped': mask})
    if task.known and 'bayes_error' in task.known:  # flips at random: f + (1 - 2 f) e
      clean, f = task.known['bayes_error'], cfg.label_noise
      known = dict(task.known, bayes_error=f + (1 - 2 * f) * clean, bayes_error_clean=clean)
      task = task._replace(known=known)
    kind = '' if task.num_classes == 2 else f' ({cfg.label_noise_kind})'
    log(f'label noise: {len(flipped)} of {len(task.y_train)} training labels flipped{kind}')
  return task
