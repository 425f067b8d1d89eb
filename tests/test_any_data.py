"""Data from anywhere: arrays, .npz files and TFDS by name, the three tasks, and bad input."""

import sys
import types

import numpy as np
import pytest

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import sources
from manifold_dynamics.data.task import Task, load_task
from manifold_dynamics.errors import UserError


def arrays(n_train=40, n_test=12, shape=(6, 6), classes=10, seed=0):
  rng = np.random.default_rng(seed)
  y_train = np.arange(n_train) % classes
  y_test = np.arange(n_test) % classes
  return (
      rng.normal(size=(n_train,) + shape).astype(np.float32),
      y_train,
      rng.normal(size=(n_test,) + shape).astype(np.float32),
      y_test,
  )


def test_tasks_from_arrays_keep_the_input_shape():
  x_train, y_train, x_test, y_test = arrays()
  parity = Task.from_arrays(x_train, y_train, x_test, y_test)
  assert parity.x_train.shape == (40, 36) and parity.input_shape == (6, 6, 1)
  np.testing.assert_array_equal(parity.y_train, np.where(y_train % 2 == 0, 1, -1))
  np.testing.assert_array_equal(parity.x_train, x_train.reshape(40, -1))  # as given
  classes = Task.from_arrays(x_train, y_train, x_test, y_test, task='classes', train_size=20)
  assert classes.num_classes == 10 and len(classes.y_train) == 20
  np.testing.assert_array_equal(classes.y_train, y_train[:20])
  pair = Task.from_arrays(x_train, y_train, x_test, y_test, task='pair:3,5')
  np.testing.assert_array_equal(pair.train_indices, np.flatnonzero(np.isin(y_train, [3, 5])))
  np.testing.assert_array_equal(pair.y_train, np.where(y_train[pair.train_indices] == 3, 1, -1))
  assert len(pair.y_test) == 2 and pair.num_classes == 2
  rgb = Task.from_arrays(*arrays(shape=(4, 4, 3)))
  assert rgb.input_shape == (4, 4, 3) and rgb.x_train.shape == (40, 48)
  flat = Task.from_arrays(*arrays(shape=(7,)))
  assert flat.input_shape == (7,)


def test_npz_dataset_through_the_config(tmp_path):
  x_train, y_train, x_test, y_test = arrays()
  path = tmp_path / 'mine.npz'
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  task = load_task(DataConfig(dataset=f'npz:{path}', train_size=30, task='classes'), log=None)
  assert task.num_classes == 10 and task.x_train.shape == (30, 36)
  np.testing.assert_array_equal(task.x_train, x_train[:30].reshape(30, -1))


def fake_tfds(monkeypatch, builders=('my_images',)):
  """A stand-in tensorflow_datasets module: list_builders, load(batch_size=-1), as_numpy."""
  rng = np.random.default_rng(0)

  def split(n):
    return {
        'image': rng.integers(0, 255, (n, 5, 5, 1)).astype(np.uint8),
        'label': np.arange(n) % 4,
    }

  module = types.SimpleNamespace(
      list_builders=lambda: list(builders),
      load=lambda name, split, batch_size, data_dir=None: [split_of(s) for s in split],
      as_numpy=lambda x: x,
  )
  split_of = lambda s: split(24 if s == 'train' else 8)
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', module)


def test_tfds_by_name(monkeypatch):
  fake_tfds(monkeypatch)
  task = load_task(DataConfig(dataset='tfds:my_images', train_size=16, task='classes'), log=None)
  assert task.num_classes == 4 and task.input_shape == (5, 5, 1)
  assert task.x_train.max() <= 1.0  # uint8 images greyed onto [0, 1] like the built-in ones
  with pytest.raises(UserError, match="unknown TFDS dataset 'nope'"):
    load_task(DataConfig(dataset='tfds:nope'), log=None)


def test_tfds_missing(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(UserError, match=r'needs tensorflow-datasets'):
    sources.load_tfds_by_name('mnist')


@pytest.mark.parametrize(
    'change, message',
    [
        (dict(y_train=np.arange(40) % 10 - 1), r'labels in \[0, K\); found label -1'),
        (dict(y_train=np.where(np.arange(40) % 10 == 4, 5, np.arange(40) % 10)), 'class 4 of'),
        (dict(x_train=np.full((40, 6, 6), np.nan, np.float32)), 'NaN or inf'),
        (dict(x_test=np.full((12, 6, 6), np.inf, np.float32)), 'NaN or inf'),
        (dict(y_train=np.arange(39)), 'disagree'),
        (dict(y_train=np.arange(40) * 0.5), 'labels must be integers'),
        (dict(x_test=np.zeros((12, 5, 5), np.float32)), 'train inputs are'),
    ],
)
def test_bad_arrays(change, message):
  names = ('x_train', 'y_train', 'x_test', 'y_test')
  given = dict(zip(names, arrays()), **change)
  with pytest.raises(UserError, match=message):
    Task.from_arrays(*(given[k] for k in names), task='classes')


@pytest.mark.parametrize(
    'task, message',
    [
        ('pair:3,3', 'names class 3 twice'),
        ('pair:3', 'must name two integer classes'),
        ('pair:3,42', 'class 42 has no example'),
        ('ten', "unknown --task='ten'"),
    ],
)
def test_tasks_that_contradict_themselves(task, message):
  with pytest.raises(UserError, match=message):
    Task.from_arrays(*arrays(), task=task)


def test_p_larger_than_the_selection():
  with pytest.raises(UserError, match='--train_size=9 exceeds the 8 training examples'):
    Task.from_arrays(*arrays(), task='pair:1,2', train_size=9)


def test_bad_npz_files(tmp_path):
  x_train, y_train, x_test, y_test = arrays()
  missing = tmp_path / 'missing.npz'
  np.savez(missing, x_train=x_train, y_train=y_train, x_test=x_test)
  with pytest.raises(UserError, match='lacks y_test'):
    load_task(DataConfig(dataset=f'npz:{missing}'), log=None)
  uneven = tmp_path / 'uneven.npz'
  np.savez(uneven, x_train=x_train, y_train=y_train[:-1], x_test=x_test, y_test=y_test)
  with pytest.raises(UserError, match='x_train has 40 examples but y_train 39'):
    load_task(DataConfig(dataset=f'npz:{uneven}'), log=None)
  corrupt = tmp_path / 'corrupt.npz'
  corrupt.write_bytes(b'PK\x03\x04 not really a zip')
  with pytest.raises(UserError, match='not a readable .npz'):
    load_task(DataConfig(dataset=f'npz:{corrupt}'), log=None)
  with pytest.raises(UserError, match='no such file'):
    load_task(DataConfig(dataset=f'npz:{tmp_path / "absent.npz"}'), log=None)
  with pytest.raises(UserError, match="unknown dataset 'mnits'"):
    DataConfig(dataset='mnits')


def test_label_noise_on_ten_classes_moves_each_flipped_label_to_another_class(tmp_path):
  path = tmp_path / 'mine.npz'
  x_train, y_train, x_test, y_test = arrays()
  np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
  clean = load_task(DataConfig(dataset=f'npz:{path}', train_size=20, task='classes'), log=None)
  noisy = load_task(
      DataConfig(dataset=f'npz:{path}', train_size=20, task='classes', label_noise=0.2), log=None
  )
  changed = np.flatnonzero(noisy.y_train != clean.y_train)
  assert len(changed) == 4  # round(0.2 * 20), none of them flipped back onto its own class
  assert set(noisy.y_train[changed]) <= set(range(noisy.num_classes))
  np.testing.assert_array_equal(noisy.y_test, clean.y_test)


def test_grey_sum_standardised_is_the_authors_preprocessing_and_trains_as_it_is():
  from manifold_dynamics.data import formats
  from manifold_dynamics.data import task as task_lib
  from manifold_dynamics.engine import train as train_lib

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (64, 4, 4, 3), dtype=np.uint8)
  test = rng.integers(0, 256, (16, 4, 4, 3), dtype=np.uint8)
  raw = formats.RawSplits(images, np.arange(64) % 10, test, np.arange(16) % 10)
  task = task_lib.task_from_arrays(raw, 'parity', 32, 0, 'rgb', grey='sum_standardised')
  assert not task.standardise and task.x_train.shape == (32, 16)
  x = images[:32].astype(np.float64) / 255  # T = the first 32
  z = (x - x.mean(axis=0)) / x.std(axis=0)  # each channel of each pixel, on T
  np.testing.assert_allclose(task.x_train, z.sum(axis=-1).reshape(32, 16), rtol=1e-4, atol=1e-4)
  x_test = test.astype(np.float64) / 255
  np.testing.assert_allclose(
      task.x_test, ((x_test - x.mean(0)) / x.std(0)).sum(-1).reshape(16, 16), rtol=1e-4, atol=1e-4
  )
  data = train_lib.TrainData.from_task(task)
  stats = train_lib.run_standardiser(data, np.ones(32, np.float32))
  np.testing.assert_array_equal(stats.shift_N, 0.0)
  np.testing.assert_array_equal(stats.scale_N, 1.0)  # the inputs enter as they are
  history = train_lib.fit(
      TrainConfig(seeds=2, epochs=5, model_settings=dict(width=4)), data, log=None
  )
  assert np.all(np.isfinite(history.R_plus))
  rgb = task_lib.task_from_arrays(raw, 'parity', 32, 0, 'rgb', grey='rgb')
  assert rgb.input_shape == (4, 4, 3) and rgb.standardise
  np.testing.assert_allclose(rgb.x_train, images[:32].reshape(32, -1) / 255.0, rtol=1e-6)
  with pytest.raises(UserError, match='is not an RGB image'):
    task_lib.task_from_arrays(
        formats.RawSplits(images[..., 0], raw.y_train, test[..., 0], raw.y_test),
        grey='sum_standardised',
    )
  with pytest.raises(UserError, match='unknown --grey'):
    DataConfig(grey='max')


def test_a_figure_title_says_when_the_colour_is_kept():
  from manifold_dynamics.studies.skeleton import run_label  # pylint: disable=g-import-not-at-top

  cnn = TrainConfig(model='cnn')
  assert run_label(DataConfig(dataset='cifar10', grey='rgb'), cnn).startswith('cifar10 rgb, P=')
  assert run_label(DataConfig(dataset='cifar10'), cnn).startswith('cifar10, P=')
