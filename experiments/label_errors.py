r"""Label errors found: the stragglers beside cleanlab, AUM, EL2N and the other scores, on the
same runs, against label errors that people found (issue 26, SPEC §9).

    python experiments/label_errors.py --study=test_errors --groundtruth_dir=../shared/groundtruth
    python experiments/label_errors.py --study=cifar10n --groundtruth_dir=../shared/groundtruth
    python experiments/label_errors.py --study=flips --datasets=mnist,fashion_mnist
    python experiments/label_errors.py --study=flips --quick          # P = 512, seconds a point

Each point is an audit (experiments/audit.py) with --cleanlab=all (in-sample and 5-fold
out-of-fold pred_probs) and every score of the scan; the sweep directory holds the audits
(points/NAME/) and table.md, one table per ground truth with the detectors as rows (AUROC,
AP, precision and recall at |E| and at 5% of P, the flagged sets' P/R/F1, the cost in
seed-epochs). The studies:

  test_errors   MNIST (the 2 x 20 MLP) and CIFAR-10 (the 8 x 20 MLP that inverts on it, SPEC
                §8) trained on the test split (P = 10 000, ten classes), against the published
                errors (mnist_mturk.json, cifar10_mturk.json of --groundtruth_dir);
  cifar10n      CIFAR-10N's aggre, random_label1 and worse labels of the first --train_size
                training examples (cifar10n_train_labels.npz), ten classes, the 8 x 20 MLP
                (and --models=cnn: the small CNN on RGB, its settings from the flags);
  flips         --datasets x symmetric and class-conditional flips x --fractions, ten
                classes, the 2 x 20 MLP.

Resumable and splittable like every sweep (--num_tasks/--task_index, --collect_only).
"""

import dataclasses
import os

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.errors import UserError
from manifold_dynamics.studies.label_errors import STUDIES, audit_point, run_label_errors

cli.define_run_flags(epochs=1000, seeds=10)
cli.define_sweep_flags(bootstrap=False)
define = cli.define_once
define(flags.DEFINE_enum, 'study', 'flips', STUDIES, 'Which ground truth.')
define(
    flags.DEFINE_string,
    'groundtruth_dir',
    None,
    'Directory of cifar10n_train_labels.npz, mnist_mturk.json and cifar10_mturk.json (read '
    'there, never copied).',
)
define(flags.DEFINE_list, 'datasets', ['mnist', 'fashion_mnist'], 'flips: the data sets.')
define(flags.DEFINE_list, 'fractions', ['0.05', '0.1', '0.2', '0.4'], 'flips: flipped fractions f.')
define(flags.DEFINE_list, 'kinds', ['symmetric', 'class_conditional'], 'flips: how labels flip.')
define(
    flags.DEFINE_list, 'label_sets', ['aggre_label', 'random_label1', 'worse_label'], 'cifar10n.'
)
define(flags.DEFINE_list, 'models', ['mlp'], 'cifar10n: mlp (8 x 20) and/or cnn (RGB).')
define(flags.DEFINE_integer, 'cnn_train_size', 2048, 'cifar10n: P of the CNN points.')
define(flags.DEFINE_float, 'cnn_lr', 0.05, 'cifar10n: full-batch lr of the CNN points.')
define(flags.DEFINE_integer, 'cnn_epochs', 500, 'cifar10n: epochs of the CNN points.')
define(flags.DEFINE_integer, 'cv_seeds', 2, 'Seeds per fold of the 5-fold cross-validation.')
FLAGS = flags.FLAGS

DEFAULTS = dict(stop_after_inversion=True, t_star_rule='first', test_every=0, task='classes')
QUICK = dict(seeds=3, epochs=120, train_size=512, chunk_epochs=40, score_epochs=['5'])
# The MLP that inverts on CIFAR-10 (SPEC §8): 8 x 20, lr 0.02, the authors' preprocessing.
CIFAR_MLP = dict(lr=0.02, epochs=3000)


def unset(settings: dict) -> dict:
  """The entries of `settings` whose flag the user did not set: a setting's own values (the
  CIFAR-10 MLP's lr and epochs) give way to the command line."""
  return {k: v for k, v in settings.items() if not cli.is_set(FLAGS, k)}


def groundtruth(name: str) -> str:
  if not FLAGS.groundtruth_dir:
    raise UserError(
        f'--study={FLAGS.study} needs --groundtruth_dir: the directory holding {name} '
        '(e.g. ../shared/groundtruth).'
    )
  path = os.path.join(FLAGS.groundtruth_dir, name)
  if not os.path.isfile(path):
    raise UserError(f'{path} does not exist: check --groundtruth_dir.')
  return path


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(
      FLAGS, QUICK, dict(DEFAULTS, score_epochs=['20']), strict_models=False
  )
  audit = dict(cleanlab='all', cv_folds=5, cv_seeds=FLAGS.cv_seeds)
  points = []
  if FLAGS.study == 'flips':
    for dataset in FLAGS.datasets:
      for kind in FLAGS.kinds:
        for f in cli.float_list(FLAGS, 'fractions'):
          data = dataclasses.replace(
              data_cfg, dataset=dataset, label_noise=f, label_noise_kind=kind
          )
          points.append(audit_point(f'{dataset}-{kind}-f{f:g}', data, train_cfg, **audit))
  elif FLAGS.study == 'test_errors':
    for dataset, settings in (('mnist', {}), ('cifar10', CIFAR_MLP)):
      data = dataclasses.replace(
          data_cfg,
          dataset=dataset,
          train_split='test',
          train_size=10000,  # the whole test split, where the published errors are
          grey='sum_standardised' if dataset == 'cifar10' else 'mean',
      )
      train = dataclasses.replace(train_cfg, **({} if FLAGS.quick else unset(settings)))
      if dataset == 'cifar10':
        train = train.with_model(depth=8, width=20)
      path = groundtruth(f'{dataset}_mturk.json')
      points.append(audit_point(dataset, data, train, groundtruth_path=path, **audit))
  else:
    labels = groundtruth('cifar10n_train_labels.npz')
    for key in FLAGS.label_sets:
      for model in FLAGS.models:
        if model == 'mlp':
          data = dataclasses.replace(
              data_cfg, dataset='cifar10', grey='sum_standardised', labels=f'{labels}:{key}'
          )
          train = dataclasses.replace(train_cfg, **({} if FLAGS.quick else unset(CIFAR_MLP)))
          train = train.with_model(depth=8, width=20)
        else:
          data = dataclasses.replace(
              data_cfg,
              dataset='cifar10',
              grey='rgb',
              labels=f'{labels}:{key}',
              train_size=data_cfg.train_size if FLAGS.quick else FLAGS.cnn_train_size,
          )
          train = train_cfg.with_model('cnn', **cli.model_settings(FLAGS, 'cnn', strict=False))
          if not FLAGS.quick:
            train = dataclasses.replace(train, lr=FLAGS.cnn_lr, epochs=FLAGS.cnn_epochs)
        points.append(audit_point(f'{model}-{key}', data, train, **audit))
  workdir = cli.sweep_workdir(FLAGS, 'label_errors', FLAGS.study, f'S{train_cfg.seeds}')
  run_label_errors(FLAGS.study, points, workdir, cli.sweep_workers(FLAGS))


if __name__ == '__main__':
  app.run(main)
