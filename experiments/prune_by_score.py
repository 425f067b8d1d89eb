r"""Data pruning by score from an audit (issue 26; data_diet's protocol at this scale).

    python experiments/audit.py --dataset=mnist --seeds=10 --workdir=runs/audit-mnist
    python experiments/prune_by_score.py --from_run=runs/audit-mnist --seeds=10 --epochs=300
    python experiments/prune_by_score.py --from_run=runs/audit-cifar10n --remove=750  # noisy
    python experiments/prune_by_score.py --from_run=... --quick           # 2 seeds, 20 epochs

Ranks T by each --scores column of the audit's examples.csv (q, el2n_t20, forgetting, -aum by
default; any column, higher = harder), keeps a fraction --kappas of it (--ends: the hardest,
the easiest) or a random subset of the same size, retrains from scratch with --seeds seeds
for --epochs full-batch epochs (the same number of updates whatever is kept), and reports
the clean test error of every point and of the full T (summary.json,
test_error_vs_kappa.png). --remove=k instead removes each score's k top suspects (and a
random k): with noisy labels, does it lower the clean test error? All the runs (points x
seeds) train as one vmapped batch; --seed_batch=N trains them N at a time where that batch
does not fit in memory (ten classes at P = 8192 reach ~10 GB).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.errors import UserError
from manifold_dynamics.studies.prune_by_score import ENDS, KAPPAS, SCORES, run_prune_by_score, table

define = cli.define_once
cli.define_from_run('to prune (an audit run: experiments/audit.py)')
define(flags.DEFINE_string, 'workdir', None, 'Run directory (default: FROM_RUN-prune_by_score).')
define(flags.DEFINE_bool, 'overwrite', False, 'Replace an existing run directory.')
define(flags.DEFINE_bool, 'quick', False, '2 seeds, 20 epochs: a smoke run.')
define(
    flags.DEFINE_list, 'scores', list(SCORES), 'examples.csv columns to rank by (higher: harder).'
)
define(flags.DEFINE_list, 'kappas', [f'{k:g}' for k in KAPPAS], 'Fractions of T kept.')
define(flags.DEFINE_list, 'ends', list(ENDS), 'Keep the hardest (hard) or the easiest (easy).')
define(flags.DEFINE_integer, 'seeds', 10, 'Seeds per point.')
define(flags.DEFINE_integer, 'epochs', None, "Epochs of every retraining (default: the audit's).")
define(flags.DEFINE_integer, 'remove', None, "Remove each score's k top suspects instead.")
define(
    flags.DEFINE_integer,
    'seed_batch',
    0,
    'Train the runs this many at a time (memory only; 0: all at once).',
)
FLAGS = flags.FLAGS


@cli.entry
def main():
  if not FLAGS.from_run:
    raise UserError('--from_run is required: an audit run directory (experiments/audit.py).')
  unknown = [e for e in FLAGS.ends if e not in ENDS]
  if unknown:
    raise UserError(f'unknown end {unknown[0]!r} in --ends; choose among {", ".join(ENDS)}.')
  summary = run_prune_by_score(
      FLAGS.from_run,
      FLAGS.workdir
      or FLAGS.from_run.rstrip('/') + '-prune_by_score' + ('-quick' if FLAGS.quick else ''),
      FLAGS.scores,
      cli.float_list(FLAGS, 'kappas'),
      FLAGS.ends,
      2 if FLAGS.quick else FLAGS.seeds,
      20 if FLAGS.quick else FLAGS.epochs,
      FLAGS.remove,
      FLAGS.overwrite,
      seed_batch=FLAGS.seed_batch,
  )
  print(table(summary['points']))


if __name__ == '__main__':
  app.run(main)
