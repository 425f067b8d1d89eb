"""Shared test set-up: strict JAX, Agg matplotlib, a key fixture, tiny on-disk datasets."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault('MPLBACKEND', 'Agg')

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

from manifold_dynamics.data import formats
from manifold_dynamics.data import task as task_lib
from manifold_dynamics.engine import train

jax.config.update('jax_numpy_rank_promotion', 'raise')

# One compilation cache for the session (each xdist worker's own), fresh each run: tests that
# build the same program (the same shapes through a new closure) compile it once, a third less
# time on the contract tests. The environment carries it to the experiments that tests start
# as subprocesses.
_COMPILATION_CACHE = tempfile.mkdtemp(prefix='manifold_dynamics-tests-jax-cache-')
atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
_CACHE_SETTINGS = dict(
    jax_compilation_cache_dir=_COMPILATION_CACHE,
    jax_persistent_cache_min_compile_time_secs=0,
    jax_persistent_cache_min_entry_size_bytes=0,
)
for _name, _value in _CACHE_SETTINGS.items():
  jax.config.update(_name, _value)
  os.environ[_name.upper()] = str(_value)


@pytest.fixture
def key():
  return jax.random.PRNGKey(0)


def make_image_splits(n_train=96, n_test=40, shape=(28, 28), seed=0):
  """Random uint8 images whose class (0..9) shifts the mean brightness of a patch, so a net
  can learn the even/odd task quickly; the border pixels are constant (std 0)."""
  rng = np.random.default_rng(seed)

  def split(n):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n,) + shape).astype(np.int64)
    even = (labels % 2 == 0).reshape((n,) + (1,) * (len(shape)))
    images[:, 4:12, 4:12, ...] += even * 150
    images[:, 0, ...] = 0  # constant row: standardisation must map it to 0
    return images.astype(np.uint8), labels

  return split(n_train) + split(n_test)


def flip_labels(labels, fraction, seed=1):
  """`labels` with a random `fraction` of them moved to the next class (of 10)."""
  flip = np.random.default_rng(seed).random(len(labels)) < fraction
  return np.where(flip, (labels + 1) % 10, labels).astype(np.uint8)


def write_mnist_like(directory, compress=False, n_train=96, n_test=40, seed=0, flipped=0.0):
  """Writes the four IDX files of a tiny MNIST-like dataset; returns the arrays. A fraction
  `flipped` of the training labels moves to the next class (then the nets separate the
  classes first and memorise the flipped examples later: their curves invert)."""
  os.makedirs(directory, exist_ok=True)
  x_train, y_train, x_test, y_test = make_image_splits(n_train, n_test, seed=seed)
  y_train = flip_labels(y_train, flipped, seed + 1)
  suffix = '.gz' if compress else ''
  for name, array in (
      ('train-images-idx3-ubyte', x_train),
      ('train-labels-idx1-ubyte', y_train),
      ('t10k-images-idx3-ubyte', x_test),
      ('t10k-labels-idx1-ubyte', y_test),
  ):
    formats.write_idx(os.path.join(directory, name + suffix), array, compress=compress)
  return x_train, y_train, x_test, y_test


@pytest.fixture
def mnist_dir(tmp_path):
  """A directory of tiny MNIST-format files (IDX, raw)."""
  directory = str(tmp_path / 'tiny_mnist')
  write_mnist_like(directory)
  return directory


@pytest.fixture(scope='session')
def noisy_data():
  """A task with 15% flipped labels: the nets separate the classes first, then memorise the
  flipped examples, so R+, R- and D invert (a small stand-in for the MNIST inversion)."""
  x_train, y_train, x_test, y_test = make_image_splits(256, 30, shape=(10, 10))
  y_train = flip_labels(y_train, 0.15)
  raw = task_lib.sources.RawSplits(x_train, y_train, x_test, y_test)
  return train.TrainData.from_task(task_lib.make_task(raw, 256))
