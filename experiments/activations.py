r"""Discussion of Ciceri et al.: phi across activation functions.

A sweep over the activations of SPEC §2 (relu, leaky_relu (slope 0.1), silu, tanh, identity)
for a 4 x 20 net on the first P = 8192 MNIST examples, SGD lr 0.2; each point stops once all
its seeds have inverted (--stop_after_inversion, on by default here; seeds that never invert
run to --epochs).

    python experiments/activations.py --seeds=20

Resumable and splittable like every sweep (--num_tasks/--task_index, SLURM array variables,
--collect_only). Runtime on a 2-core CPU: 12 min at 20 seeds; --quick (P = 1024, 4 seeds, 300
epochs) about 35 s. Expected: every non-linear activation inverts with phi 0.090-0.100; the
linear net's R+ does not (README, Fig. 3 section).

Writes the sweep directory (default runs/activations-...): config.json, points/<activation>/,
summary.json (per activation: phi_mean, phi_std, t_star_mean, the fraction of seeds that
invert) and observables_vs_train_error.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import discussion

cli.define_run_flags(epochs=1000, seeds=20)
cli.define_sweep_flags(bootstrap=False)
cli.define_once(
    flags.DEFINE_list, 'activations', list(discussion.ACTIVATION_ORDER), 'Activations of the sweep.'
)
FLAGS = flags.FLAGS

DEFAULTS = dict(cli.SWEEP_DEFAULTS, depth=4)  # the Discussion's 4 x 20 net
QUICK = dict(seeds=4, epochs=300, train_size=1024)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS)
  workdir = cli.sweep_workdir(
      FLAGS,
      'activations',
      data_cfg.dataset,
      f'P{data_cfg.train_size}',
      cli.network_name(train_cfg),
      f'S{train_cfg.seeds}',
  )
  discussion.run_activations(
      FLAGS.activations, data_cfg, train_cfg, workdir, cli.sweep_workers(FLAGS)
  )


if __name__ == '__main__':
  app.run(main)
