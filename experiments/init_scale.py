r"""Discussion of Ciceri et al.: the inversion as the initialisation scale grows.

A sweep over the scale s of the initialisation (every weight and bias ~ U(-s/sqrt(n),
s/sqrt(n)), n the fan-in, so Var(w) x n = s^2/3) from s = 0.25 to 24, through s = sqrt(3)
where the layers of fan-in H have Var(w) = 1/H; MNIST defaults otherwise (P = 8192, 2 x 20
tanh, SGD lr 0.2). The runs go the full --epochs (no stop rule by default): the size of the
rise of R+ after its minimum is the result. Per scale: phi, the rise, the fraction of seeds
that invert, initial and final radii; the summary says from which s the minimum disappears.

    python experiments/init_scale.py --seeds=10

Resumable and splittable like every sweep. Runtime on a 2-core CPU: 13.5 min at 10 seeds;
--quick (3 scales, P = 1024, 4 seeds, 300 epochs) about 20 s. Expected: the rise of R+ shrinks
as s grows and vanishes between Var(w) x H = 1 and 3, phi staying near 0.09 while it exists.

Writes the sweep directory (default runs/init_scale-...): config.json, points/s<scale>/,
summary.json, R_plus_vs_epoch.{png,pdf} (one curve per scale) and rise_vs_variance.{png,pdf}
(rise of R+ and fraction inverting against Var(w) x H).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import discussion

cli.define_run_flags(epochs=1000, seeds=10)
cli.define_sweep_flags(bootstrap=False)
cli.define_once(
    flags.DEFINE_list,
    'init_scales',
    [f'{s:.4g}' for s in discussion.INIT_SCALES],
    'Initialisation scales s of the sweep.',
)
FLAGS = flags.FLAGS

DEFAULTS = dict(test_every=0)  # the full run: the rise after the minimum is measured
QUICK = dict(seeds=4, epochs=300, train_size=1024)
QUICK_SCALES = ['0.5', '1', '12']


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS)
  scales = cli.float_list(FLAGS, 'init_scales', QUICK_SCALES)
  workdir = cli.sweep_workdir(
      FLAGS,
      'init_scale',
      data_cfg.dataset,
      f'P{data_cfg.train_size}',
      cli.network_name(train_cfg),
      train_cfg.activation,
      f'S{train_cfg.seeds}',
  )
  discussion.run_init_scale(scales, data_cfg, train_cfg, workdir, cli.sweep_workers(FLAGS))


if __name__ == '__main__':
  app.run(main)
