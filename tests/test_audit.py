"""The stragglers as a data-quality tool (issue 26): detection metrics against scikit-learn,
stratified folds, label files and class flips, ground-truth files and their bad inputs, the
cleanlab glue, and experiments/audit.py end to end."""

import json
import os

import numpy as np
import pytest
from absl.testing import flagsaver

from manifold_dynamics.analysis import detection, peers
from manifold_dynamics.config import DataConfig
from manifold_dynamics.data import groundtruth
from manifold_dynamics.data import task as task_lib
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from tests.test_experiments import TINY, load_experiment

audit_main = load_experiment('audit')


def test_detection_metrics_on_hand_made_scores():
  truth = np.array([1, 1, 0, 0, 0, 0, 0, 1], bool)
  perfect = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.0, 0.1, 0.7])
  assert (
      detection.auroc(perfect, truth) == 1.0 and detection.average_precision(perfect, truth) == 1.0
  )
  assert detection.auroc(-perfect, truth) == 0.0
  flat = np.zeros(8)  # every score tied: chance, AP the base rate
  assert detection.auroc(flat, truth) == 0.5 and detection.average_precision(flat, truth) == 3 / 8
  top = detection.top_k(perfect, truth, 3)
  assert top == {'k': 3, 'precision': 1.0, 'recall': 1.0}
  f = detection.flagged(np.array([1, 0, 1, 0, 0, 0, 0, 1], bool), truth)
  assert f['precision'] == pytest.approx(2 / 3) and f['recall'] == pytest.approx(2 / 3)
  assert f['f1'] == pytest.approx(2 / 3)
  assert detection.flagged(np.zeros(8, bool), truth)['precision'] is None
  assert detection.ranks(perfect, [0, 7]).tolist() == [1.0, 3.0]
  assert detection.auroc(perfect, np.zeros(8, bool)) is None


def test_detection_metrics_equal_scikit_learns_with_ties():
  metrics = pytest.importorskip('sklearn.metrics')
  rng = np.random.default_rng(0)
  for _ in range(5):
    truth = rng.random(300) < 0.1
    score = np.round(rng.random(300) + truth * 0.3, 1)  # many ties, as q has
    assert detection.auroc(score, truth) == pytest.approx(metrics.roc_auc_score(truth, score))
    assert detection.average_precision(score, truth) == pytest.approx(
        metrics.average_precision_score(truth, score)
    )


def test_stratified_folds_hold_each_class_in_proportion():
  labels = np.repeat(np.arange(3), [50, 30, 20])
  fold = peers.stratified_folds(labels, 5, seed=1)
  for f in range(5):
    assert np.bincount(labels[fold == f], minlength=3).tolist() == [10, 6, 4]
  assert not np.array_equal(fold, peers.stratified_folds(labels, 5, seed=2))
  with pytest.raises(UserError, match='--cv_folds must be >= 2'):
    peers.stratified_folds(labels, 1)


def test_cleanlab_glue_on_small_data():
  pytest.importorskip('cleanlab')
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 40)
  probs = np.full((120, 3), 0.05)
  probs[np.arange(120), labels] = 0.9
  wrong = rng.choice(120, 12, replace=False)
  probs[wrong] = np.roll(probs[wrong], 1, axis=1)  # confident in another class
  found = peers.cleanlab_detectors(labels, probs)
  assert set(found) == {'self_confidence', 'normalized_margin', 'find_label_issues'}
  truth = np.isin(np.arange(120), wrong)
  assert detection.flagged(found['find_label_issues'], truth)['f1'] > 0.8
  assert detection.auroc(found['self_confidence'], truth) > 0.9


def test_class_flips_symmetric_and_class_conditional():
  rng = np.random.default_rng(0)
  y = np.arange(200) % 10
  task = task_lib.Task.from_arrays(
      rng.normal(size=(200, 4)), y, rng.normal(size=(20, 4)), y[:20], 'classes'
  )
  sym, flipped = task_lib.flip_labels(task, 0.2, 'symmetric')
  cond, same = task_lib.flip_labels(task, 0.2, 'class_conditional')
  assert len(flipped) == 40 and np.array_equal(flipped, same)
  changed = np.flatnonzero(sym.y_train != task.y_train)
  assert np.array_equal(changed, flipped)  # every flip lands on another class
  assert len(np.unique(sym.y_train[flipped] - task.y_train[flipped])) > 3  # to many classes
  np.testing.assert_array_equal(cond.y_train[flipped], (task.y_train[flipped] + 1) % 10)


def test_labels_from_a_file_and_their_bad_inputs(tmp_path):
  split = np.arange(30) % 3
  noisy = split.copy()
  noisy[[4, 7]] = 0
  good = tmp_path / 'labels.npz'
  np.savez(good, clean_label=split, noisy=noisy, floats=noisy.astype(float))
  labels, wrong = task_lib.read_labels(f'{good}:noisy', split)
  np.testing.assert_array_equal(labels, noisy)
  assert np.flatnonzero(wrong).tolist() == [4, 7]
  with pytest.raises(UserError, match='name an array of'):
    task_lib.read_labels(str(good), split)
  with pytest.raises(UserError, match='needs one integer label per example'):
    task_lib.read_labels(f'{good}:floats', split)
  with pytest.raises(UserError, match='needs one integer label per example \\(40\\)'):
    task_lib.read_labels(f'{good}:noisy', np.arange(40) % 3)
  with pytest.raises(UserError, match='its clean_label does not match'):
    task_lib.read_labels(f'{good}:noisy', split[::-1])
  with pytest.raises(UserError, match='cannot read'):
    task_lib.read_labels(f'{tmp_path}/nothing.npz:noisy', split)


def write_mturk(path, entries):
  with open(path, 'w') as f:
    json.dump(entries, f)
  return str(path)


def test_published_errors_and_their_bad_inputs(tmp_path):
  classes = np.arange(40) % 10
  entry = lambda i, given, votes: {
      'id': i, 'given_original_label': given, 'our_guessed_label': (given + 1) % 10,
      'mturk': {'given': votes, 'guessed': 5 - votes, 'neither': 0},
  }  # fmt: skip
  path = write_mturk(tmp_path / 'ok.json', [entry(3, 3, 1), entry(12, 2, 4), entry(7, 7, 2)])
  found = groundtruth.published_errors(path, np.arange(40), classes)
  assert found.errors.tolist() == [3, 7] and found.candidates.tolist() == [3, 7, 12]
  assert found.guessed.tolist() == [4, 8]
  shifted = write_mturk(tmp_path / 'other.json', [entry(3, 4, 1)])
  with pytest.raises(UserError, match="another given label than T's"):
    groundtruth.published_errors(shifted, np.arange(40), classes)
  with pytest.raises(UserError, match='none of its examples is in T'):
    groundtruth.published_errors(
        write_mturk(tmp_path / 'far.json', [entry(99, 9, 1)]), np.arange(40), classes
    )
  (tmp_path / 'bad.json').write_text('{"not": "a list"}')
  with pytest.raises(UserError, match='not a list of reviewed label errors'):
    groundtruth.published_errors(str(tmp_path / 'bad.json'), np.arange(40), classes)


def test_audit_end_to_end_with_flips_and_every_detector(mnist_dir, tmp_path):
  pytest.importorskip('cleanlab')
  workdir = str(tmp_path / 'audit')
  with flagsaver.flagsaver(
      quick=True, data_dir=mnist_dir, workdir=workdir, task='classes', label_noise=0.1,
      cleanlab='all', cv_folds=3, cv_seeds=1, score_epochs=['3'], **dict(TINY, epochs=30, lr=0.5),
  ):  # fmt: skip
    audit_main.main(['audit.py'])
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  rows = summary['detection']
  assert summary['groundtruth']['errors'] == 6  # round(0.1 x 64)
  assert {'q', 'stragglers_majority', '-aum', 'el2n_t3', 'cleanlab_oof_issues'} <= set(rows)
  assert rows['cleanlab_oof_self_confidence']['cost'] == summary['cost_seed_epochs']['cv']
  assert summary['cost_seed_epochs']['cv'] == 3 * 1 * summary['epochs_trained']
  import csv  # pylint: disable=g-import-not-at-top

  with open(os.path.join(workdir, 'examples.csv')) as f:
    examples = list(csv.DictReader(f))
  assert len(examples) == 64 and sum(int(r['known_error']) for r in examples) == 6
  assert {'given_label', 'network_label_tstar', 'network_label_last', 'q'} <= set(examples[0])
  with np.load(os.path.join(workdir, 'probs.npz')) as probs:
    assert probs['pred_probs_oof'].shape == (64, 10)
    np.testing.assert_allclose(probs['pred_probs_last'].sum(axis=1), 1.0, rtol=1e-5)
  assert os.path.exists(os.path.join(workdir, 'suspects.png'))


def test_audit_on_the_test_split_against_published_errors(mnist_dir, tmp_path):
  from tests.conftest import write_mnist_like  # pylint: disable=g-import-not-at-top

  _, _, _, y_test = write_mnist_like(str(tmp_path / 'data'))
  entries = [
      {'id': i, 'given_original_label': int(y_test[i]), 'our_guessed_label': 0,
       'mturk': {'given': v, 'guessed': 5 - v, 'neither': 0}}
      for i, v in ((2, 1), (5, 4), (9, 0))
  ]  # fmt: skip
  path = write_mturk(tmp_path / 'mturk.json', entries)
  workdir = str(tmp_path / 'audit')
  tiny = dict(TINY, train_size=40, epochs=20)
  with flagsaver.flagsaver(
      data_dir=str(tmp_path / 'data'), workdir=workdir, task='parity', train_split='test',
      groundtruth=path, cleanlab='none', score_epochs=['2'], **tiny,
  ):  # fmt: skip
    audit_main.main(['audit.py'])
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert summary['train_split'] == 'test' and summary['groundtruth']['errors'] == 2
  assert summary['error_ranks']['indices'] == [2, 9]
  assert not [k for k in summary['detection'] if k.startswith('cleanlab')]


@pytest.mark.parametrize(
    'overrides, message',
    [
        (dict(groundtruth='/nonexistent.json'), 'lists test-set label errors: train on the test'),
        (dict(cleanlab='oof', cv_seeds=0), '--cv_seeds must be positive'),
    ],
)
def test_audit_bad_inputs(mnist_dir, tmp_path, capsys, overrides, message):
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=str(tmp_path / 'a'), **dict(TINY, **overrides)
  ):
    with pytest.raises(SystemExit):
      audit_main.main(['audit.py'])
  err = capsys.readouterr().err
  assert message in err and err.count('\n') == 1


def test_a_missing_cleanlab_is_a_one_line_error(monkeypatch):
  import builtins  # pylint: disable=g-import-not-at-top

  real = builtins.__import__

  def no_cleanlab(name, *args, **kwargs):
    if name.startswith('cleanlab'):
      raise ImportError(name)
    return real(name, *args, **kwargs)

  monkeypatch.setattr(builtins, '__import__', no_cleanlab)
  with pytest.raises(UserError, match=r"cleanlab is not installed: pip install -e '.\[compare\]'"):
    peers.cleanlab_modules()


def test_the_data_config_knows_the_new_settings():
  with pytest.raises(UserError, match="unknown --train_split='validation'"):
    DataConfig(train_split='validation')
  with pytest.raises(UserError, match="unknown --label_noise_kind='pairs'"):
    DataConfig(label_noise_kind='pairs')


def test_pruning_by_score_from_an_audit(mnist_dir, tmp_path, capsys):
  audit = str(tmp_path / 'audit')
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=audit, cleanlab='none', score_epochs=['3'],
      **dict(TINY, epochs=20, lr=0.5),
  ):  # fmt: skip
    audit_main.main(['audit.py'])
  prune_main = load_experiment('prune_by_score')
  out = str(tmp_path / 'pruned')
  with flagsaver.flagsaver(
      quick=True, from_run=audit, workdir=out, scores=['q', 'el2n_t3'], kappas=['0.5']
  ):  # --quick: 2 seeds, 20 epochs
    prune_main.main(['prune_by_score.py'])
  points = io.read_json(os.path.join(out, 'summary.json'))['points']
  assert set(points) == {
      'full',
      'q:hard:0.5',
      'q:easy:0.5',
      'el2n_t3:hard:0.5',
      'el2n_t3:easy:0.5',
      'random::0.5',
  }
  assert points['q:hard:0.5']['kept'] == 32 and points['full']['kept'] == 64
  assert len(points['random::0.5']['test_error']) == 2
  assert '| q | hard |' in capsys.readouterr().out
  grouped = str(tmp_path / 'grouped')  # 12 runs, 5 at a time: the same errors
  with flagsaver.flagsaver(
      quick=True, from_run=audit, workdir=grouped, scores=['q', 'el2n_t3'], kappas=['0.5'],
      seed_batch=5,
  ):  # fmt: skip
    prune_main.main(['prune_by_score.py'])
  again = io.read_json(os.path.join(grouped, 'summary.json'))
  assert again['seed_batch'] == 5
  for name, p in points.items():
    np.testing.assert_allclose(again['points'][name]['test_error'], p['test_error'], atol=1e-6)
  with flagsaver.flagsaver(from_run=audit, workdir=str(tmp_path / 'bad'), scores=['nope']):
    with pytest.raises(SystemExit):
      prune_main.main(['prune_by_score.py'])
  assert "--scores names 'nope', not a column of" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / 'bad')  # refused before any work


def test_label_errors_sweep_of_flips_tabulates_every_detector(mnist_dir, tmp_path):
  pytest.importorskip('cleanlab')
  main = load_experiment('label_errors')
  workdir = str(tmp_path / 'flips')
  with flagsaver.flagsaver(
      quick=True, data_dir=mnist_dir, workdir=workdir, study='flips', datasets=['mnist'],
      kinds=['class_conditional'], fractions=['0.2'], cv_seeds=1, task='parity',
      score_epochs=['3'], **dict(TINY, epochs=20, lr=0.5),
  ):  # fmt: skip
    main.main(['label_errors.py'])
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert set(summary['points']) == {'mnist-class_conditional-f0.2'}
  table = open(os.path.join(workdir, 'table.md')).read()
  assert '**mnist, class_conditional flips: AUROC / AP by flipped fraction**' in table
  assert '| q |' in table and 'f = 0.2' in table


def test_the_cifar_mlps_own_settings_give_way_to_flags_set_in_code():
  """label_errors' CIFAR-10 MLP trains 3000 epochs at lr 0.02 unless the user sets either, on
  the command line or through absl's flagsaver (a notebook): cli.is_set, one rule for both."""
  main = load_experiment('label_errors')
  with flagsaver.flagsaver():
    assert main.unset(main.CIFAR_MLP) == main.CIFAR_MLP
  with flagsaver.flagsaver(epochs=7):
    assert main.unset(main.CIFAR_MLP) == {'lr': main.CIFAR_MLP['lr']}
