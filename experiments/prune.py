r"""Fig. 2a-c: prune the stragglers, retrain from scratch, test (SPEC §6).

From a finished inversion run:

    python experiments/prune.py --from_run=runs/inversion-mnist

or training the base run here first (`--seeds` base seeds, of which --max_base_seeds are used):

    python experiments/prune.py --dataset=mnist --seeds=10

For each of the first --max_base_seeds (default 10) seeds of the base run it retrains, from a
fresh initialisation and with the same settings, on T without: S(t*) ("stragglers"), S(t) at
t = --t_before x t* and --t_after x t*, a random subset of the size of S(t*) ("random"), and
S(t(eps)) and its random control for every --eps. All retrainings run together in one vmapped
program (a pruned set is a 0/1 weight per example; the standardisation is recomputed on it).
It reports whether R+ of every retrained run still shows an inversion (SPEC §5), the
observables at convergence, and the test error on the clean and noisy test sets.

Runtime with the defaults (10 base seeds x 14 removal kinds = 140 runs x 1000 epochs): about
30 min on a 2-core CPU. --quick (2 base seeds, 300 epochs, P = 1024) runs in about a minute.

Writes config.json, history/ (all retrained runs), removals.npz, summary.json and the
figures prune_R_plus_vs_epoch (2a), prune_observables_vs_eps (2b), prune_test_error_vs_eps (2c).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.errors import UserError
from manifold_dynamics.studies.pruning import run_prune

cli.define_run_flags(epochs=1000, seeds=10)
define = cli.define_once
cli.define_from_run('to prune')
define(
    flags.DEFINE_list,
    'eps',
    ['0.1', '0.05', '0.02', '0.01', '0.005'],
    'Training errors eps: remove S(t(eps)) (Fig. 2b, 2c).',
)
define(flags.DEFINE_float, 't_before', 0.5, 'Remove S(t) at t = t_before x t* (a larger set).')
define(flags.DEFINE_float, 't_after', 3.0, 'Remove S(t) at t = t_after x t* (a smaller set).')
define(
    flags.DEFINE_list,
    'sigmas',
    ['0', '0.5', '0.75', '1.0', '1.2', '1.5'],
    'Std of the Gaussian noise on standardised test pixels.',
)
define(
    flags.DEFINE_integer, 'max_base_seeds', 10, 'Base seeds whose sets are removed and retrained.'
)
FLAGS = flags.FLAGS

QUICK = dict(seeds=2, epochs=300, train_size=1024, max_base_seeds=2)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK)
  max_base = cli.quick_value(FLAGS, 'max_base_seeds', QUICK['max_base_seeds'])
  if max_base < 1:
    raise UserError(f'--max_base_seeds must be positive, got {max_base}.')
  eps, sigmas = cli.float_list(FLAGS, 'eps'), cli.float_list(FLAGS, 'sigmas')
  workdir = cli.workdir(FLAGS, 'prune', data_cfg, train_cfg)
  run_prune(
      data_cfg,
      train_cfg,
      workdir,
      FLAGS.from_run,
      eps,
      FLAGS.t_before,
      FLAGS.t_after,
      sigmas,
      max_base,
      overwrite=FLAGS.overwrite,
  )


if __name__ == '__main__':
  app.run(main)
