r"""Fig. 1c of Ciceri et al.: the inversion on non-overlapping subsets of the data (SPEC §6).

Trains the inversion experiment's network on --num_subsets non-overlapping slices of the train
split, slice k being examples [k*P, (k+1)*P) for k = --subset_index, +1, ..., and plots R+,
R-, D against the training error, one mean curve per slice:

    python experiments/subsampling.py --dataset=mnist

If the curves and phi agree across slices, the inversion is a property of the data
distribution, not of one sample of it. MNIST has 60000 training examples: at most 7 slices of
P = 8192.

Runtime of the default (4 slices x 20 seeds x 1000 epochs = 8e4 seed-epochs): about 15 min on
a 2-core CPU. --quick (2 slices, 4 seeds, 300 epochs, P = 1024) runs in about 20 s.

Writes config.json, history_subset<k>/ per slice, summary.json (the inversion summary of
each slice under "subsets", and phi over slices) and observables_vs_train_error.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import robustness

cli.define_run_flags(epochs=1000, seeds=20)
cli.define_once(
    flags.DEFINE_integer,
    'num_subsets',
    4,
    'Number of non-overlapping slices of --train_size examples.',
)
FLAGS = flags.FLAGS

QUICK = dict(seeds=4, epochs=300, train_size=1024, num_subsets=2)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK)
  num_subsets = cli.quick_value(FLAGS, 'num_subsets', QUICK['num_subsets'])
  workdir = cli.workdir(FLAGS, f'subsampling{num_subsets}', data_cfg, train_cfg)
  robustness.run_subsampling(data_cfg, train_cfg, workdir, num_subsets, FLAGS.overwrite)


if __name__ == '__main__':
  app.run(main)
