r"""Are two run directories the same, bit for bit? (run by hand, across a refactoring)

    git worktree add /tmp/before HEAD~1       # the code before the change
    (cd /tmp/before && python experiments/inversion.py --quick --workdir=/tmp/a)
    python experiments/inversion.py --quick --workdir=/tmp/b
    python benchmarks/identical.py /tmp/a /tmp/b

Compares every array of every .npy and .npz file under the two directories (histories,
checkpoints, stragglers, scores, removals), and every number of summary.json, and lists
what differs with the largest difference. Sweeps and runs with several histories compare
file by file. Exit status 0 when everything is identical (NaN equal to NaN), 1 otherwise.
"""

import json
import os
import sys

import numpy as np

IGNORED = ('config.json', 'progress.json')  # settings and bookkeeping, not results


def arrays(path: str) -> dict:
  """{relative name: array} of every .npy and .npz file under `path` (checkpoints by leaf)."""
  out = {}
  for root, _, files in os.walk(path):
    for f in sorted(files):
      full = os.path.join(root, f)
      rel = os.path.relpath(full, path)
      if f.endswith('.npy'):
        out[rel] = np.load(full)
      elif f.endswith('.npz'):
        with np.load(full) as z:
          out.update({f'{rel}:{k}': z[k] for k in z.files})
  return out


def numbers(value, prefix=''):
  """{path: value} of the leaves of a JSON value."""
  if isinstance(value, dict):
    return {
        k: v for key, item in value.items() for k, v in numbers(item, f'{prefix}{key}.').items()
    }
  if isinstance(value, list):
    return {k: v for i, item in enumerate(value) for k, v in numbers(item, f'{prefix}{i}.').items()}
  return {prefix[:-1]: value}


def summaries(path: str) -> dict:
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      if f.endswith('.json') and f not in IGNORED:
        with open(os.path.join(root, f)) as fh:
          rel = os.path.relpath(os.path.join(root, f), path)
          out.update({f'{rel}:{k}': v for k, v in numbers(json.load(fh)).items()})
  return out


def compare(a: str, b: str) -> list:
  """Lines describing every difference between run directories a and b (none: identical)."""
  lines = []
  xa, xb = arrays(a), arrays(b)
  for name in sorted(set(xa) | set(xb)):
    if name not in xa or name not in xb:
      lines.append(f'{name}: only in {a if name in xa else b}')
      continue
    u, v = xa[name], xb[name]
    if u.shape != v.shape or u.dtype != v.dtype:
      lines.append(f'{name}: {u.dtype}{u.shape} vs {v.dtype}{v.shape}')
    elif not np.array_equal(u, v, equal_nan=u.dtype.kind == 'f'):
      diff = np.nanmax(np.abs(u.astype(np.float64) - v.astype(np.float64)))
      count = int(np.sum(u != v))
      lines.append(f'{name}: {count} of {u.size} values differ, by up to {diff:.3g}')
  ja, jb = summaries(a), summaries(b)
  for key in sorted(set(ja) | set(jb)):
    u, v = ja.get(key), jb.get(key)
    if u != v and not (
        isinstance(u, float) and isinstance(v, float) and np.isnan(u) and np.isnan(v)
    ):
      lines.append(f'{key}: {u!r} vs {v!r}')
  return lines


def main(argv) -> int:
  if len(argv) != 3:
    print(__doc__.strip().splitlines()[0])
    print('usage: python benchmarks/identical.py RUN_A RUN_B')
    return 2
  lines = compare(argv[1], argv[2])
  for line in lines[:200]:
    print(line)
  count = len(arrays(argv[1]))
  print(f'{"identical" if not lines else f"{len(lines)} differences"} ({count} arrays compared)')
  return 1 if lines else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
