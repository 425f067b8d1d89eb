r"""Peak host memory of a run against its length: history in memory vs streamed (by hand).

    python benchmarks/memory.py --seeds=100 --epochs_list=100,500 --output=runs/memory.json

For each way of keeping the history (`memory`: train.MemoryStore, as every run did before
streaming; `streamed`: store.HistoryStore, what experiments now use) and each length in
--epochs_list, a fresh child process trains --seeds seeds on the --dataset task (P =
--train_size; --test_every=0 by default, which does not change what is kept), then does what
the inversion experiment does with the history (t*, phi, S(t*), summary), and reports its
peak resident memory (ru_maxrss). Runs alternate between the two ways, so a drift of the
shared machine hits both. The slope between the shortest and the longest run is the memory
that each further epoch costs; the report extrapolates it to 20000 epochs, at this P and at
P = 60000 (the whole MNIST train split).
"""

import json
import os
import resource
import subprocess
import sys
import tempfile

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.analysis import inversion
from manifold_dynamics.data import load_task
from manifold_dynamics.engine import train
from manifold_dynamics.records import store

cli.define_run_flags(epochs=0, seeds=100)
flags.DEFINE_list('epochs_list', ['100', '500'], 'Run lengths to measure.')
flags.DEFINE_enum('child', None, ['memory', 'streamed'], 'Internal: measure one run.')
flags.DEFINE_string('output', None, 'Write the report as JSON here.')
FLAGS = flags.FLAGS


def measure_one(mode: str) -> dict:
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, {}, defaults=dict(test_every=0))
  task = load_task(data_cfg, log=lambda _: None)
  with tempfile.TemporaryDirectory() as tmp:
    history_store = (
        store.HistoryStore(os.path.join(tmp, 'history'), task.train_indices)
        if mode == 'streamed'
        else None
    )
    history = train.fit(train_cfg, train.TrainData.from_task(task), log=None, store=history_store)
    inv = inversion.analyse(history)
    inversion.stragglers(history, inv.t_star)
    inversion.summary(history, inv)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {
      'mode': mode,
      'epochs': train_cfg.epochs,
      'seeds': train_cfg.seeds,
      'train_size': data_cfg.train_size,
      'peak_mb': peak_kb / 1024,
  }


def make_report(rows) -> dict:
  """Slopes of the peak against epochs, per way of keeping the history, extrapolated to 20000
  epochs; a slope at or below zero (no growth: what is left is the noise of a peak-RSS
  measurement, some 20 MB) extrapolates as flat."""
  report = {'rows': rows, 'slope_mb_per_1000_epochs': {}, 'extrapolated_20000_epochs_mb': {}}
  last = max(rows, key=lambda r: r['epochs'])
  # what an in-memory history holds per epoch: the packed masks and six float32 observables
  held = last['seeds'] * (-(-last['train_size'] // 8) + 6 * 4) / 1e6 * 1000
  report['history_mb_per_1000_epochs'] = held
  print(
      f'an in-memory history holds {held:.1f} MB per 1000 epochs ({last["seeds"]} seeds, '
      f'P={last["train_size"]})'
  )
  for mode in ('memory', 'streamed'):
    mine = sorted((r for r in rows if r['mode'] == mode), key=lambda r: r['epochs'])
    first, last = mine[0], mine[-1]
    slope = (last['peak_mb'] - first['peak_mb']) / (last['epochs'] - first['epochs']) * 1000
    growth = max(slope, 0.0)
    scale = 60000 / last['train_size']  # the per-epoch records grow with P
    here = f'P={last["train_size"]}'
    extrapolated = {
        here: last['peak_mb'] + growth * (20000 - last['epochs']) / 1000,
        'P=60000': last['peak_mb'] + growth * scale * (20000 - last['epochs']) / 1000,
    }
    report['slope_mb_per_1000_epochs'][mode] = slope
    report['extrapolated_20000_epochs_mb'][mode] = extrapolated
    print(
        f'{mode:>9s}: {slope:+.1f} MB per 1000 epochs{" (no growth)" if slope <= 0 else ""}; '
        f'20000 epochs -> {extrapolated[here]:,.0f} MB at this P, '
        f'{extrapolated["P=60000"]:,.0f} MB at P=60000'
    )
  return report


def main(argv):
  cli.reject_arguments(argv)
  if FLAGS.child:
    print(json.dumps(measure_one(FLAGS.child)))
    return
  passed = [a for a in sys.argv[1:] if not a.startswith(('--epochs_list', '--output'))]
  rows = []
  for epochs in [int(e) for e in FLAGS.epochs_list]:
    for mode in ('memory', 'streamed'):
      out = subprocess.run(
          [sys.executable, __file__, *passed, f'--epochs={epochs}', f'--child={mode}'],
          check=True,
          capture_output=True,
          text=True,
      )
      rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
      print(f'{mode:>9s}  {epochs:6d} epochs  peak {rows[-1]["peak_mb"]:8.1f} MB', flush=True)
  report = make_report(rows)
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(report, f, indent=2)


if __name__ == '__main__':
  app.run(main)
