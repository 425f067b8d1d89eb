r"""Stragglers beside the other example-difficulty scores, on the same runs (beyond the paper).

Trains --seeds nets recording every score (forgetting events and the epoch each example is
learned for good, EL2N and GraNd at --score_epochs and at each seed's t*, dataset-cartography
confidence / variability / correctness, area under the margin, the input norm) and compares
them with the stragglers S(t*):

    python experiments/scores.py --dataset=mnist

or analyses an inversion run recorded with the scores (no training for the comparison; the
results go to runs/scores-of-<that run> unless --workdir says otherwise):

    python experiments/inversion.py --scores=all --score_epochs=5,10,20
    python experiments/scores.py \
        --from_run=runs/inversion-mnist-P8192-L2xH20-tanh-sgd-lr0.2-S100-T1000

It reports the Spearman correlation of every pair of scores (mean and spread over seeds), the
overlap of each score's top-k (k = |S(t*)| of the seed) with S(t*) and its hypergeometric z,
the seed-to-seed stability of every top-k set against the same null, whether the stragglers
leave the misclassified set last; it prunes the top-k, the bottom-k and a random set of the
first --max_base_seeds seeds by each of --prune_scores, retrains them all in one program and
tests them on the noise grid --sigmas (0 = no pruning). With --label_noise=f (a fraction of
the training labels flipped) it reports each score's precision and recall at finding them.

Runtime of the defaults (100 seeds x 1000 epochs, then 17 removals x 10 base seeds = 170
retrained runs x 1000 epochs): about 1 h on a 2-core CPU. --quick (4 seeds, 300 epochs,
P = 1024, 2 base seeds) runs in about a minute.

Writes config.json, history/ (trained here), scores.npz (every score, seeds x P),
stragglers.npz, examples.csv (one row per training example in the split's order: index,
class, label, each score's mean and std over seeds, straggler frequency; with label noise the
true label and a flipped flag), label_noise.npz (the flipped examples), history_prune/ and
removals.npz, summary.json, and the figures data_map, hardest_examples and
prune_test_error_vs_sigma (PNG, PDF).
"""

import os

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.analysis import scores as score_stats
from manifold_dynamics.studies import scores

cli.define_run_flags(epochs=1000, seeds=100)
define = cli.define_once
cli.define_from_run('recorded with --scores, to analyse (--dataset, if given, must match)')
define(
    flags.DEFINE_list,
    'prune_scores',
    list(scores.DEFAULT_PRUNE),
    'Scores whose top-k and bottom-k are pruned and retrained, of '
    f'{", ".join(score_stats.COMPARED)}.',
)
define(
    flags.DEFINE_list,
    'sigmas',
    ['0', '0.5', '0.75', '1.0', '1.2', '1.5'],
    'Std of the Gaussian noise on standardised test pixels.',
)
define(
    flags.DEFINE_integer,
    'max_base_seeds',
    10,
    'Seeds whose top-k, bottom-k and random sets are pruned and retrained (0: no pruning).',
)
FLAGS = flags.FLAGS

DEFAULTS = dict(scores=['all'], score_epochs=list(scores.DEFAULT_SCORE_EPOCHS))
QUICK = dict(seeds=4, epochs=300, train_size=1024, max_base_seeds=2)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS)
  max_base = cli.quick_value(FLAGS, 'max_base_seeds', QUICK['max_base_seeds'])
  if FLAGS.from_run and not cli.is_set(FLAGS, 'dataset'):
    data_cfg = None  # the run's own
  if FLAGS.from_run:
    name = os.path.basename(os.path.normpath(FLAGS.from_run))
    workdir = FLAGS.workdir or os.path.join('runs', f'scores-of-{name}')
  else:
    workdir = cli.workdir(FLAGS, 'scores', data_cfg, train_cfg)
  scores.run_scores(
      data_cfg,
      train_cfg,
      workdir,
      FLAGS.from_run,
      FLAGS.prune_scores,
      cli.float_list(FLAGS, 'sigmas'),
      max_base,
      overwrite=FLAGS.overwrite,
  )


if __name__ == '__main__':
  app.run(main)
