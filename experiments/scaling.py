r"""Fig. 3a and 3b of Ciceri et al.: the straggler fraction phi against the training-set size P.

A sweep over datasets x P (SPEC §6): every point trains --seeds nets of the default network
(2 x 20 tanh, SGD lr 0.2) on the first P examples and stops once every seed has inverted on
R+, R- and D (--stop_after_inversion, on by default here; the test set is evaluated at the
last epoch only, --test_every=0). Per dataset it fits phi(P) = phi_inf (1 - (P/P0)^(-gamma))
with a bootstrap over seeds for the intervals.

    python experiments/scaling.py --datasets=mnist --seeds=20
    python experiments/scaling.py                        # mnist, fashion_mnist (+ kmnist)

KMNIST has no registry copy: it joins when its original files are in --data_dir/kmnist (with
several datasets, --data_dir holds one subdirectory per dataset; others come from the cache)
or TFDS can load it; otherwise a one-line note says it was left out.

Resumable and splittable: running the same command again skips the complete points; on a
cluster, `sbatch --array=0-3 --wrap "python experiments/scaling.py --workdir=runs/scaling"`
(or --num_tasks=4 --task_index=i) shares the points among 4 workers; `--collect_only` rebuilds
summary.json and the figures from the complete points.

Runtime (2-core CPU): --datasets=mnist --seeds=20 (P = 1024 ... 32768 and 60000) 9.5 min,
--datasets=fashion_mnist 12.6 min (README, Fig. 3 section); --quick (MNIST, P = 1024, 2048,
4096, 4 seeds) about 25 s. Expected: phi grows with P and saturates, near 0.105 on MNIST and
0.036 on Fashion-MNIST.

Writes the sweep directory (default runs/scaling-...): config.json (the grid), points/<dataset>-
P<P>/ (one run directory each), summary.json (per dataset, per P: phi_mean, phi_std,
t_star_mean; per dataset the fit with phi_inf, P0, gamma and their 95% intervals),
phi_vs_train_size.{png,pdf} (Fig. 3b) and observables_vs_train_error.{png,pdf} (Fig. 3a).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import scaling

cli.define_run_flags(epochs=1000, seeds=20)
cli.define_sweep_flags()
define = cli.define_once
define(
    flags.DEFINE_list,
    'datasets',
    ['mnist', 'fashion_mnist', 'kmnist'],
    'Datasets of the sweep (kmnist only when its files can be read).',
)
define(
    flags.DEFINE_list,
    'train_sizes',
    [],
    'Training-set sizes P (default: 1024 ... 32768 in powers of two and the whole split).',
)
FLAGS = flags.FLAGS

QUICK = dict(seeds=4, epochs=300)
QUICK_LISTS = dict(datasets=['mnist'], train_sizes=['1024', '2048', '4096'])


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, cli.SWEEP_DEFAULTS)
  datasets = cli.known_datasets(cli.quick_value(FLAGS, 'datasets', QUICK_LISTS['datasets']))
  sizes = cli.int_list(FLAGS, 'train_sizes', QUICK_LISTS['train_sizes']) or None
  workdir = cli.sweep_workdir(
      FLAGS,
      'scaling',
      *datasets,
      cli.network_name(train_cfg),
      train_cfg.activation,
      f'S{train_cfg.seeds}',
  )
  scaling.run_scaling(
      datasets,
      sizes,
      train_cfg,
      workdir,
      data_cfg.data_dir,
      data_cfg.data_source,
      FLAGS.bootstrap,
      cli.sweep_workers(FLAGS),
  )


if __name__ == '__main__':
  app.run(main)
