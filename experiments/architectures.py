r"""Fig. 3e of Ciceri et al.: phi_inf across depth and width, against the number of parameters.

A sweep over depth x width x P (SPEC §6: depths 2, 4, 8 x widths 10, 20, 40, 80, SGD lr 0.1,
P = 4096 ... 32768 on MNIST); every point stops once all its seeds have inverted
(--stop_after_inversion, on by default here; the test set is evaluated at the last epoch
only). Per architecture the finite-size fit over P gives phi_inf with a bootstrap interval;
the straggler sets of the architectures are compared at one P (--overlap_size, default 8192)
with the hypergeometric null of the stragglers experiment.

    python experiments/architectures.py --seeds=10
    python experiments/architectures.py --depths=2,4 --widths=20 --train_sizes=4096,8192,16384

Resumable and splittable like every sweep: the same command continues an interrupted sweep;
`sbatch --array=0-7 --wrap "python experiments/architectures.py --workdir=runs/arch"` (or
--num_tasks=8 --task_index=i) shares its 48 points among 8 workers; --collect_only rebuilds
summary.json and the figures from the complete points.

Runtime: 47 min at 10 seeds on a 2-core CPU (README, Fig. 3 section); the points are
independent, so N workers divide it by about N. --quick (depths 2, 3 x width 20 x P = 1024,
2048, 4096, 4 seeds) takes about 45 s.

Writes the sweep directory (default runs/architectures-...): config.json, points/L<d>xH<w>-P<P>/,
summary.json (per architecture: num_params, phi per P, the fit with phi_inf and its interval;
the overlaps), phi_inf_vs_params.{png,pdf} (Fig. 3e), phi_vs_train_size.{png,pdf} and
overlap_by_architecture.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import scaling

cli.define_run_flags(epochs=1000, seeds=10)
cli.define_sweep_flags()
define = cli.define_once
define(flags.DEFINE_list, 'depths', ['2', '4', '8'], 'Depths L (weight layers) of the sweep.')
define(flags.DEFINE_list, 'widths', ['10', '20', '40', '80'], 'Widths H of the sweep.')
define(
    flags.DEFINE_list,
    'train_sizes',
    [str(p) for p in scaling.ARCHITECTURE_TRAIN_SIZES],
    'Training-set sizes P of the fit of phi_inf.',
)
define(
    flags.DEFINE_integer,
    'overlap_size',
    None,
    'P at which the straggler sets of the architectures are compared (default: --train_size '
    'when swept, else the largest P).',
)
FLAGS = flags.FLAGS

DEFAULTS = dict(cli.SWEEP_DEFAULTS, lr=0.1)  # SPEC §3: the architecture sweep uses lr 0.1
QUICK = dict(seeds=4, epochs=300, train_size=1024)
QUICK_LISTS = dict(depths=['2', '3'], widths=['20'], train_sizes=['1024', '2048', '4096'])


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS)
  depths = cli.int_list(FLAGS, 'depths', QUICK_LISTS['depths'])
  widths = cli.int_list(FLAGS, 'widths', QUICK_LISTS['widths'])
  sizes = cli.int_list(FLAGS, 'train_sizes', QUICK_LISTS['train_sizes'])
  workdir = cli.sweep_workdir(
      FLAGS,
      'architectures',
      data_cfg.dataset,
      train_cfg.activation,
      f'{train_cfg.optimizer}-lr{train_cfg.lr:g}',
      f'S{train_cfg.seeds}',
  )
  scaling.run_architectures(
      depths,
      widths,
      sizes,
      data_cfg,
      train_cfg,
      workdir,
      FLAGS.bootstrap,
      FLAGS.overlap_size,
      cli.sweep_workers(FLAGS),
  )


if __name__ == '__main__':
  app.run(main)
