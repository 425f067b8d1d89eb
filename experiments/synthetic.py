r"""What phi measures: phi on data whose structure is known, against what sets its difficulty.

    python experiments/synthetic.py --family=gaussians          # separation m: Bayes error Phi(-m)
    python experiments/synthetic.py --family=hidden_manifold    # intrinsic dimension d, N = 100
    python experiments/synthetic.py --family=label_noise        # flipped fraction (clouds, m = 2)
    python experiments/synthetic.py --family=long_tail          # fraction in rare sub-clusters
    python experiments/synthetic.py --family=gaussians --values=0.5,1,2 --seeds=10
    python experiments/synthetic.py --family=gaussians --values=0.5,1,1.5 \
        --train_sizes=1024,2048,4096,8192,16384                  # and phi_inf per value

A sweep (resumable and splittable like every sweep: --num_tasks/--task_index, SLURM array
variables, --collect_only) of one inversion run per value of the family's parameter, each
analysed as experiments/predictors.py does: phi beside the linear classifier's and the k-NN
errors, and S(t*) against the known hard examples. 2 x 20 tanh, SGD lr 0.2, P = 8192, N = 100;
each point stops once its seeds have inverted (--stop_after_inversion, on by default here).

Writes the sweep directory (default runs/synthetic-<family>-...): config.json, points/,
summary.json (one row per value; for the clouds the fit of phi against the Bayes error) and
phi_against_difficulty.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import predictors

cli.define_run_flags(epochs=1000, seeds=20)
cli.define_sweep_flags(bootstrap=False)
cli.define_once(
    flags.DEFINE_enum, 'family', 'gaussians', list(predictors.FAMILIES), 'The family swept.'
)
cli.define_once(
    flags.DEFINE_list, 'values', [], "Values of the family's parameter (default: its grid)."
)
cli.define_once(
    flags.DEFINE_list,
    'train_sizes',
    [],
    'With several, every value is also trained at each P and phi_inf fitted (finite-size form).',
)
FLAGS = flags.FLAGS

DEFAULTS = dict(cli.SWEEP_DEFAULTS)
FAMILY_DEFAULTS = {'label_noise': dict(separation=2.0)}  # noise on clouds that barely overlap
QUICK = dict(seeds=4, epochs=300, train_size=1024)
QUICK_VALUES = {'gaussians': [0.5, 2.0], 'hidden_manifold': [2, 20], 'label_noise': [0.0, 0.2],
                'long_tail': [0.0, 0.1]}  # fmt: skip


@cli.entry
def main():
  defaults = dict(DEFAULTS, **FAMILY_DEFAULTS.get(FLAGS.family, {}))
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, defaults)
  values = cli.float_list(FLAGS, 'values', QUICK_VALUES[FLAGS.family])
  workdir = cli.sweep_workdir(
      FLAGS,
      'synthetic',
      FLAGS.family,
      f'P{data_cfg.train_size}',
      f'N{data_cfg.synthetic_dim}',
      f'S{train_cfg.seeds}',
  )
  predictors.run_synthetic(
      FLAGS.family, values, data_cfg, train_cfg, workdir, cli.sweep_workers(FLAGS),
      train_sizes=cli.int_list(FLAGS, 'train_sizes'),
  )  # fmt: skip


if __name__ == '__main__':
  app.run(main)
