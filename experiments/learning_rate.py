r"""A conv net's full-batch learning rate by the SPEC §8 rule (issue 27).

    python experiments/learning_rate.py --models=cnn,resnet --cnn_channels=8,16 \
        --resnet_width=4 --train_size=2048 --seeds=5 --epochs=600     # the CPU grid's size
    python experiments/learning_rate.py --quick                       # P = 128, seconds

For each model and dataset (--datasets: mnist, fashion_mnist, cifar10 by default), full-batch
parity runs at each candidate lr (--lrs, largest first; a smaller one only where the larger
failed) with every layer measured, flattened and pooled. The rule: the largest lr at which
the training loss falls in every seed and every epoch up to t* (the latest after-transient t*
of any curve at any layer that inverts), within float noise, on every dataset. Writes the
sweep directory (points/<model>-<dataset>-lr<lr>/, summary.json with each point's check and
the lr chosen per model, loss_vs_epoch.png) and prints the choice.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.analysis import learning_rate as rule
from manifold_dynamics.studies.learning_rate import run_learning_rate

cli.define_run_flags(epochs=600, seeds=5)
cli.define_sweep_flags(bootstrap=False)
define = cli.define_once
define(flags.DEFINE_list, 'models', ['cnn', 'resnet'], 'Models whose lr to choose.')
define(flags.DEFINE_list, 'datasets', ['mnist', 'fashion_mnist', 'cifar10'], 'Datasets measured.')
define(flags.DEFINE_list, 'lrs', [f'{lr:g}' for lr in rule.CANDIDATES], 'Candidate lrs.')
FLAGS = flags.FLAGS

DEFAULTS = dict(test_every=0, t_star_rule='after_transient', train_size=2048)
QUICK = dict(seeds=2, epochs=30, train_size=128, chunk_epochs=15)
CONV_LAYERS = 'all,all:pooled'


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS, strict_models=False)
  lrs = cli.float_list(FLAGS, 'lrs')
  workdir = cli.sweep_workdir(
      FLAGS, 'learning_rate', f'P{data_cfg.train_size}', f'S{train_cfg.seeds}'
  )
  run_learning_rate(
      FLAGS.models,
      FLAGS.datasets,
      lrs,
      data_cfg,
      train_cfg,
      workdir,
      cli.sweep_workers(FLAGS),
      model_settings={m: cli.model_settings(FLAGS, m, strict=False) for m in FLAGS.models},
      layers={m: 'all' if m == 'mlp' else CONV_LAYERS for m in FLAGS.models},
  )


if __name__ == '__main__':
  app.run(main)
