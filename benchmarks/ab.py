r"""Engine throughput before and after a change, side by side in one run (run by hand).

    git worktree add /tmp/before HEAD~1               # the code before the change
    python benchmarks/ab.py --before=/tmp/before --rounds=3

Runs each tree's own `benchmarks/throughput.py` (with PYTHONPATH set to that tree, so each
times its own engine) in alternation, before, after, before, after, ..., so that both sides
share whatever else the machine is doing; keeps each side's best rate per row (seed count,
test-set schedule, precision) and prints after / before. A ratio below 1 is a slowdown.
--before_args and --after_args are each tree's throughput flags (default: the MLP engine at
1, 10 and 100 seeds).
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

flags.DEFINE_string('before', None, 'Checkout of the code before the change.', required=True)
flags.DEFINE_string('after', '.', 'Checkout of the code after the change.')
flags.DEFINE_integer('rounds', 3, 'Alternations of before and after.')
flags.DEFINE_string('output', None, 'Write the rows and ratios as JSON here.')
FLAGS = flags.FLAGS
flags.DEFINE_list(
    'before_args',
    ['--memory_epochs=0', '--cnn_seeds=', '--repeats=3'],
    "Flags of the before tree's throughput.py (default: the MLP engine only, before the CNN "
    'flags changed).',
)
flags.DEFINE_list(
    'after_args',
    ['--memory_epochs=0', '--cnn_sizes=', '--repeats=3'],
    "Flags of the after tree's throughput.py.",
)


def main(argv):
  del argv
  best = {'before': {}, 'after': {}}
  for k in range(FLAGS.rounds):
    for side in ('before', 'after'):
      with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'throughput.json')
        tree = os.path.abspath(getattr(FLAGS, side))
        subprocess.run(
            [
                sys.executable,
                os.path.join(tree, 'benchmarks', 'throughput.py'),
                *getattr(FLAGS, f'{side}_args'),
                f'--output={out}',
            ],
            check=True,
            cwd=tree,
            env=dict(os.environ, PYTHONPATH=tree),
            stdout=subprocess.DEVNULL,
        )
        with open(out) as f:
          for r in json.load(f)['engine']:
            key = (r['seeds'], r['test_every'], r['matmul_precision'])
            best[side][key] = max(best[side].get(key, 0.0), r['seed_epochs_per_s'])
      print(f'round {k + 1}/{FLAGS.rounds}: {side} done', flush=True)
  rows = []
  print(f'{"seeds":>5} {"test":>4} {"precision":>9} {"before":>10} {"after":>10}  after/before')
  for key in sorted(best['before']):
    a, b = best['before'][key], best['after'].get(key, float('nan'))
    rows.append(dict(seeds=key[0], test_every=key[1], precision=key[2], before=a, after=b))
    print(f'{key[0]:5d} {key[1]:4d} {key[2]:>9} {a:10.1f} {b:10.1f}  {b / a:.3f}')
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(rows, f, indent=2)


if __name__ == '__main__':
  app.run(main)
