r"""Fig. 1a of Ciceri et al.: R+, R-, D at initialisation and after training (SPEC §6).

Trains --seeds independent initialisations (default 1000, the paper's count) of the inversion
experiment's network, --seeds_per_group at a time through the same vmapped engine, and keeps
R+, R-, D, the loss and the errors of every seed at epoch 0 and at the last epoch, with its t*
and phi:

    python experiments/before_after.py --dataset=mnist

Seed s uses the key of seed s of experiments/inversion.py with the same --seed.

Runtime of the default (1000 seeds x 1000 epochs = 1e6 seed-epochs): about 3.5 h on a 2-core
CPU (~80-90 seed-epochs/s); a GPU run is what this default is for. --seeds=300 took 62 min on
that CPU, with a peak RSS of 1.1 GB: memory is that of one group, whatever --seeds is.
--quick (8 seeds in groups of 4, 300 epochs, P = 1024) runs in about 20 s.

Writes config.json, samples.npz (per seed: before_<x>, after_<x> for x in R_plus, R_minus, D,
loss, train_error, test_error; t_star_<obs>, inversion_<obs>, rise_<obs>; phi), summary.json
(means and stds before and after) and before_after.{png,pdf} (density of (R+, R-) and histogram
of D, before vs after).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import robustness

cli.define_run_flags(epochs=1000, seeds=1000)
cli.define_once(
    flags.DEFINE_integer,
    'seeds_per_group',
    100,
    'Seeds trained together in one vmapped program (bounds the memory).',
)
FLAGS = flags.FLAGS

QUICK = dict(seeds=8, epochs=300, train_size=1024, seeds_per_group=4)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK)
  group = cli.quick_value(FLAGS, 'seeds_per_group', QUICK['seeds_per_group'])
  workdir = cli.workdir(FLAGS, 'before_after', data_cfg, train_cfg)
  robustness.run_before_after(data_cfg, train_cfg, workdir, group, FLAGS.overwrite)


if __name__ == '__main__':
  app.run(main)
