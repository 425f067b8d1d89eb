r"""Stragglers S(t*) and their stability across seeds and architectures (Fig. 2d, SPEC §6).

From a finished inversion run (no training for its architecture):

    python experiments/stragglers.py --from_run=runs/inversion-mnist --architectures=2x20

or training everything here (the default architectures 2x20, 4x20, 8x20, as in the paper's
identity test):

    python experiments/stragglers.py --dataset=mnist --seeds=100

It reports |S(t*)|, the fraction of stragglers two seeds share, the overlap M = |S_0 ∩ S_1| of
disjoint seed pairs against the hypergeometric null of random subsets of the same sizes (its
mean from scipy, checked by sampling), z = (<M> - <M_hat>) / sigma_M (and with the null's
spread), z as a function of eps for S(t(eps)), and the same overlaps across architectures.

Runtime: from an existing run a few seconds; each extra architecture trains like the inversion
experiment (about 20 min per 1e5 seed-epochs on a 2-core CPU). --quick (4 seeds, 300 epochs,
P = 1024, architectures 2x20 and 3x20) runs in about 30 s on a CPU.

Writes config.json, history_L*xH*/ (architectures trained here), stragglers.npz, summary.json
and the figures stragglers_seed0 (the images), z_vs_eps and overlap_by_architecture (PNG, PDF).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.errors import UserError
from manifold_dynamics.studies.stragglers import run_stragglers

cli.define_run_flags(epochs=1000, seeds=100)
define = cli.define_once
cli.define_from_run('to analyse')
define(
    flags.DEFINE_list,
    'architectures',
    ['2x20', '4x20', '8x20'],
    'depth x width of the runs compared (the base run first).',
)
define(
    flags.DEFINE_list,
    'eps',
    ['0.2', '0.1', '0.05', '0.02', '0.01', '0.005', '0.002'],
    'Training errors eps of S(t(eps)) for the stability-vs-eps curve.',
)
define(
    flags.DEFINE_enum, 'observable', 'R_plus', ['R_plus', 'R_minus', 'D'], 'Whose t* defines S(t*).'
)
FLAGS = flags.FLAGS

QUICK = dict(seeds=4, epochs=300, train_size=1024)
QUICK_ARCHITECTURES = ['2x20', '3x20']


def parse_architectures(values):
  try:
    return [tuple(int(v) for v in a.lower().split('x')) for a in values]
  except ValueError:
    raise UserError(
        f'--architectures takes DEPTHxWIDTH items such as 2x20, got ' f'{",".join(values)}.'
    ) from None


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK)
  architectures = parse_architectures(cli.quick_value(FLAGS, 'architectures', QUICK_ARCHITECTURES))
  if not FLAGS.from_run and train_cfg.model == 'mlp':  # the first architecture is the base
    train_cfg = train_cfg.with_model(depth=architectures[0][0], width=architectures[0][1])
  workdir = cli.workdir(FLAGS, 'stragglers', data_cfg, train_cfg)
  run_stragglers(
      data_cfg,
      train_cfg,
      workdir,
      FLAGS.from_run,
      architectures,
      cli.float_list(FLAGS, 'eps'),
      FLAGS.observable,
      overwrite=FLAGS.overwrite,
  )


if __name__ == '__main__':
  app.run(main)
