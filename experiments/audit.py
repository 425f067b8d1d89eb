r"""The suspect examples of a data set (issue 26): train the seeds, rank every example.

    python experiments/audit.py --dataset=mnist --task=classes --seeds=10     # ~5 min on a CPU
    python experiments/audit.py --dataset=npz:mine.npz --task=classes --model=cnn
    python experiments/audit.py --dataset=mnist --train_split=test --train_size=10000 \
        --task=classes --groundtruth=../shared/groundtruth/mnist_mturk.json   # published errors
    python experiments/audit.py --dataset=cifar10 --task=classes --depth=8 --lr=0.02 \
        --labels=../shared/groundtruth/cifar10n_train_labels.npz:aggre_label  # CIFAR-10N
    python experiments/audit.py --quick                                       # seconds

Every data set the project loads (built-in, npz:, tfds:, synthetic:), any model, parity or
all classes, either split (--train_split=test trains on the test split). The seeds train with
every per-example score recorded (forgetting, cartography, AUM, EL2N and GraNd at
--score_epochs, default 20), stopping once every seed has inverted (--stop_after_inversion,
on by default here; --t_star_rule=first makes t* exact under it). Then: the straggler
frequency q (the fraction of seeds whose S(t*) holds an example), cleanlab's label quality
scores and label issues from the runs' own probabilities (--cleanlab=insample, the default)
and out of fold (--cleanlab=oof or all: --cv_folds x --cv_seeds more runs). cleanlab is an
optional extra: pip install -e '.[compare]'.

Writes the run directory: examples.csv (one row per example: index in the split, given
label, the networks' label at t* and at the end, q, every score, the flagged sets),
probs.npz (the in-sample and out-of-fold pred_probs cleanlab takes), summary.json (the top
suspects; with a ground truth, every detector's AUROC, AP, precision and recall, and cost),
detection.md and suspects.png (the top --top suspects, for image data).
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies.audit import CLEANLAB, run_audit

cli.define_run_flags(epochs=1000, seeds=10)
define = cli.define_once
define(flags.DEFINE_enum, 'cleanlab', 'insample', CLEANLAB, 'cleanlab detectors to compute.')
define(flags.DEFINE_integer, 'cv_folds', 5, 'K of the cross-validation (--cleanlab=oof|all).')
define(flags.DEFINE_integer, 'cv_seeds', 2, 'Seeds per fold of the cross-validation.')
define(
    flags.DEFINE_string,
    'groundtruth',
    None,
    'The published test-set label errors of the data set (mnist_mturk.json, cifar10_mturk.json; '
    'with --train_split=test), scored against.',
)
define(flags.DEFINE_integer, 'top', 40, 'Suspects shown in suspects.png and summary.json.')
FLAGS = flags.FLAGS

DEFAULTS = dict(stop_after_inversion=True, t_star_rule='first', test_every=0)
QUICK = dict(seeds=3, epochs=150, train_size=512, score_epochs=['5'])


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS)
  workdir = cli.workdir(FLAGS, 'audit', data_cfg, train_cfg)
  run_audit(
      data_cfg,
      train_cfg,
      workdir,
      FLAGS.overwrite,
      cleanlab=FLAGS.cleanlab,
      cv_folds=FLAGS.cv_folds,
      cv_seeds=FLAGS.cv_seeds,
      groundtruth_path=FLAGS.groundtruth,
      top=FLAGS.top,
  )


if __name__ == '__main__':
  app.run(main)
