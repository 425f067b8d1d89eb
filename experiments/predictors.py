r"""What phi measures: predictors that train no network, beside phi and the stragglers.

    python experiments/predictors.py --from_run=runs/inversion-mnist      # a finished run
    python experiments/predictors.py --dataset=synthetic:gaussians --separation=1 --seeds=20
    python experiments/predictors.py --quick

On the standardised training set T of the run: the best linear classifier (logistic
regression to convergence: its training error, misclassified set and margins), the k-NN
leave-one-out errors (k = 1, 10) and the TwoNN intrinsic dimension; each beside phi, and its
misclassified set against every seed's S(t*) (Jaccard, hypergeometric z), its per-example score
against the straggler frequency (Spearman). On data of known structure (--dataset=synthetic:*,
--label_noise) also how far S(t*) finds the known hard examples (precision, recall, AUC).

Writes the run directory (default runs/predictors-...): config.json, history/ (unless
--from_run), summary.json, examples.csv (one row per example of T: straggler frequency, linear
margin, the predictors' mistakes, the ground truth) and predictors_beside_phi.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies.predictors import run_predictors

cli.define_run_flags(epochs=1000, seeds=20)
cli.define_from_run('to analyse')
FLAGS = flags.FLAGS

QUICK = dict(seeds=4, epochs=300, train_size=1024)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK)
  workdir = cli.workdir(FLAGS, 'predictors', data_cfg, train_cfg)
  run_predictors(data_cfg, train_cfg, workdir, FLAGS.from_run, overwrite=FLAGS.overwrite)


if __name__ == '__main__':
  app.run(main)
