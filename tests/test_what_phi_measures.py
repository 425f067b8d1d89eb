"""Data of known structure (data/synthetic.py) and the data-only predictors
(analysis/predictors.py): each reproduces what is known of it; the entry points end to end."""

import math
import os

import numpy as np
import pytest
from absl.testing import flagsaver

from manifold_dynamics.analysis import predictors
from manifold_dynamics.config import DataConfig
from manifold_dynamics.data import load_task, synthetic
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from tests.test_experiments import load_experiment

predictors_main = load_experiment('predictors')
synthetic_main = load_experiment('synthetic')


@pytest.mark.parametrize('m', [0.5, 1.5])
def test_the_bayes_classifier_of_two_clouds_errs_at_phi_of_minus_m(m):
  n = 40000
  raw, truth, known = synthetic.generate('synthetic:gaussians', synthetic.Params(20, m), n)
  assert known['bayes_error'] == pytest.approx(0.5 * math.erfc(m / math.sqrt(2)))
  p = known['bayes_error']
  # sign(u.x) is the Bayes classifier: its error is the fraction of examples beyond the boundary
  assert abs(truth['bayes_wrong'].mean() - p) < 4 * math.sqrt(p * (1 - p) / n)
  np.testing.assert_array_equal(truth['bayes_wrong'], truth['bayes_margin'] < 0)
  # the margin is the distance to the boundary, along u: |margin| = |u.x| for every example
  u = synthetic._direction(synthetic.Params(20, m), 0, 20)
  np.testing.assert_allclose(np.abs(truth['bayes_margin']), np.abs(raw.x_train @ u), atol=1e-5)


def test_training_sets_nest_and_the_test_split_is_apart():
  cfg = lambda P: DataConfig(dataset='synthetic:long_tail', train_size=P, synthetic_dim=8)
  small, large = load_task(cfg(1000), log=lambda _: None), load_task(cfg(5000), log=lambda _: None)
  np.testing.assert_array_equal(small.x_train, large.x_train[:1000])
  np.testing.assert_array_equal(small.truth['tail'], large.truth['tail'][:1000])
  assert not np.any(np.all(small.x_train[:, None] == small.x_test[None, :200], axis=-1))
  other = load_task(DataConfig(dataset='synthetic:long_tail', train_size=1000, synthetic_dim=8,
                               synthetic_seed=1), log=lambda _: None)  # fmt: skip
  assert not np.array_equal(other.x_train, small.x_train)


def test_the_long_tail_holds_its_fraction_in_rare_sub_clusters():
  raw, truth, _ = synthetic.generate(
      'synthetic:long_tail', synthetic.Params(30, 1.0, 10, 0.1), 20000
  )
  assert abs(truth['tail'].mean() - 0.1) < 4 * math.sqrt(0.09 / 20000)
  assert set(np.unique(truth['tail_cluster'][truth['tail']])) == set(range(synthetic.TAIL_CLUSTERS))
  # a tail example sits within 0.5 sqrt(N) of its sub-cluster's centre, far from the clouds'
  for c in range(3):
    members = raw.x_train[truth['tail_cluster'] == c]
    spread = np.linalg.norm(members - members.mean(axis=0), axis=1).mean()
    assert spread == pytest.approx(0.5 * math.sqrt(30), rel=0.1)


def test_twonn_finds_the_hidden_manifolds_intrinsic_dimension():
  raw, truth, known = synthetic.generate(
      'synthetic:hidden_manifold', synthetic.Params(dim=50, latent_dim=2), 4000
  )
  assert known['intrinsic_dim'] == 2.0
  _, distance = predictors.neighbours(raw.x_train, 2)
  assert predictors.twonn(distance) == pytest.approx(2.0, rel=0.15)
  # the labels come from the teacher on the latent variables: both classes, half each
  assert abs(np.mean(raw.y_train) - 0.5) < 0.05
  assert np.all(truth['latent_margin'] >= 0)


def test_label_noise_records_the_flipped_examples():
  clean = load_task(DataConfig(dataset='synthetic:gaussians', train_size=1000), log=lambda _: None)
  noisy = load_task(
      DataConfig(dataset='synthetic:gaussians', train_size=1000, label_noise=0.1), log=None
  )  # log=None: silent
  flipped = noisy.truth['flipped']
  assert flipped.sum() == 100
  np.testing.assert_array_equal(noisy.y_train[flipped], -clean.y_train[flipped])
  np.testing.assert_array_equal(noisy.y_train[~flipped], clean.y_train[~flipped])
  # flipping at random moves the Bayes error of the labels trained on to f + (1 - 2 f) e
  e = clean.known['bayes_error']
  assert noisy.known['bayes_error'] == pytest.approx(0.1 + 0.8 * e)
  assert noisy.known['bayes_error_clean'] == e


@pytest.mark.parametrize(
    'kwargs,message',
    [
        (dict(dataset='synthetic:spirals'), 'unknown synthetic data set'),
        (dict(dataset='synthetic:gaussians', separation=-1.0), '--separation must be >= 0'),
        (dict(dataset='synthetic:long_tail', tail_fraction=1.0), '--tail_fraction must be in'),
        (dict(dataset='synthetic:hidden_manifold', latent_dim=0), 'must be positive'),
    ],
)
def test_bad_synthetic_settings_fail_in_one_line(kwargs, message):
  with pytest.raises(UserError, match=message) as e:
    DataConfig(**kwargs)
  assert '\n' not in str(e.value)


def test_the_linear_predictor_separates_what_is_separable_and_not_xor():
  x = np.array([[0.0, 0], [1, 0], [0, 1], [5, 5], [6, 5], [5, 6]])
  y = np.array([1, 1, 1, -1, -1, -1])
  p = predictors.linear(x, y)
  assert p.error == 0.0 and np.all(p.hardness < 0)  # every margin positive
  xor = np.array([[0.0, 0], [1, 1], [0, 1], [1, 0]] * 5) + np.random.default_rng(0).normal(
      0, 0.01, (20, 2)
  )
  labels = np.array([1, 1, -1, -1] * 5)
  assert predictors.linear(xor, labels).error >= 0.25
  # ten classes on a line: softmax regression gets the ordered clusters right
  centres = np.repeat(np.arange(10.0), 20)
  x10 = np.stack([np.cos(centres / 10 * 2 * np.pi), np.sin(centres / 10 * 2 * np.pi)], 1)
  assert predictors.linear(x10 * 5, centres.astype(int)).error == 0.0


def test_knn_leave_one_out_on_hand_made_points():
  x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [0.35]])
  y = np.array([1, 1, 1, -1, -1, -1])  # the last point sits among the other class
  index, distance = predictors.neighbours(x, 3)
  assert index[0].tolist() == [1, 2, 5] and distance[0, 0] == pytest.approx(0.1)
  one = predictors.knn(y, index, 1)
  np.testing.assert_array_equal(one.wrong, [False, False, False, False, False, True])
  three = predictors.knn(y, index, 3)
  assert three.wrong[5] and three.hardness[5] == 1.0 and three.hardness[0] == pytest.approx(1 / 3)


def test_comparisons_with_the_stragglers_on_hand_made_sets():
  P = 100
  sets = [np.arange(10), np.arange(5, 15)]
  same = predictors.Predictor(0.1, np.isin(np.arange(P), np.arange(10)), -np.arange(P, dtype=float))
  out = predictors.compare(same, sets, P)
  assert out['misclassified'] == 10
  assert out['jaccard_mean'] == pytest.approx((1.0 + 5 / 15) / 2)
  frequency = predictors.straggler_frequency(sets, P)
  assert frequency[7] == 1.0 and frequency[12] == 0.5 and frequency[50] == 0.0
  truth = {'flipped': np.isin(np.arange(P), [0, 1, 2, 3, 90]), 'margin': np.arange(P) / P}
  agree = predictors.truth_agreement(truth, sets, P)
  assert agree['flipped']['precision'] == pytest.approx((4 / 10 + 0 / 10) / 2)
  assert agree['flipped']['recall'] == pytest.approx(2 / 5)
  # frequency decreases with the margin: a perfect rank agreement up to ties
  assert agree['margin']['spearman_of_straggler_frequency_with_minus_it'] > 0.5
  assert predictors.auc(np.array([3.0, 2, 1, 0]), np.array([True, True, False, False])) == 1.0
  assert predictors.auc(np.array([1.0, 1, 1, 1]), np.array([True, False, True, False])) == 0.5


def test_predictors_and_synthetic_sweep_end_to_end(tmp_path):
  workdir = str(tmp_path / 'pred')
  tiny = dict(train_size=256, epochs=40, seeds=2, chunk_epochs=20, synthetic_dim=10)
  with flagsaver.flagsaver(dataset='synthetic:long_tail', tail_fraction=0.1, workdir=workdir,
                           **tiny):  # fmt: skip
    predictors_main.main(['predictors.py'])
  files = set(os.listdir(workdir))
  assert {'summary.json', 'examples.csv', 'truth.npz', 'predictors_beside_phi.png'} <= files
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert set(summary['predictors']) == {'linear', 'knn1', 'knn10'}
  assert 'tail' in summary['truth'] and summary['known']['tail_fraction'] == 0.1
  with open(os.path.join(workdir, 'examples.csv')) as f:
    header, rows = f.readline().strip().split(','), f.readlines()
  assert 'straggler_frequency' in header and 'truth_tail' in header and len(rows) == 256
  # the same analysis from the finished run
  again = str(tmp_path / 'again')
  with flagsaver.flagsaver(from_run=workdir, workdir=again):
    predictors_main.main(['predictors.py'])
  assert io.read_json(os.path.join(again, 'summary.json'))['predictors'] == summary['predictors']

  sweep = str(tmp_path / 'sweep')
  with flagsaver.flagsaver(
      family='gaussians', values=['0.5', '2'], train_sizes=[], workdir=sweep, **tiny
  ):
    synthetic_main.main(['synthetic.py'])
  out = io.read_json(os.path.join(sweep, 'summary.json'))
  assert out['points_complete'] == 2 and [r['separation'] for r in out['rows']] == [0.5, 2.0]
  assert 'phi_against_bayes_error' in out
  assert os.path.exists(os.path.join(sweep, 'phi_against_difficulty.png'))


@pytest.mark.slow
def test_the_synthetic_sweep_fits_phi_inf_over_a_p_scan(tmp_path):
  tiny = dict(epochs=40, seeds=2, chunk_epochs=20, synthetic_dim=10)
  scan = str(tmp_path / 'scan')  # a P-scan per value: phi_inf fitted
  with flagsaver.flagsaver(
      family='gaussians', values=['1'], train_sizes=['64', '128', '256'], workdir=scan,
      **dict(tiny, train_size=64),
  ):  # fmt: skip
    synthetic_main.main(['synthetic.py'])
  out = io.read_json(os.path.join(scan, 'summary.json'))
  assert out['points_complete'] == 3 and out['train_sizes'] == [64, 128, 256]
  assert set(out['phi_inf']['1']['phi_by_train_size']) == {'64', '128', '256'}
  assert 'converged' in out['phi_inf']['1'] and out['rows'][0]['train_size'] == 256


@pytest.mark.slow
def test_the_settings_grid_end_to_end(mnist_dir, tmp_path):
  from manifold_dynamics.studies import settings

  settings_main = load_experiment('settings')
  sweep = str(tmp_path / 'grid')
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=sweep, models=['mlp'], datasets=['mnist'], batches=['0', '16'],
      train_size=64, epochs=20, seeds=2, chunk_epochs=10, width=6, lr=0.5,
  ):  # fmt: skip
    settings_main.main(['settings.py'])
  out = io.read_json(os.path.join(sweep, 'summary.json'))
  assert out['points_complete'] == 4
  rows = {r['cell']: r for r in out['rows']}
  assert set(rows) == {
      'mlp-mnist-parity-GD', 'mlp-mnist-parity-B16', 'mlp-mnist-classes-GD',
      'mlp-mnist-classes-B16',
  }  # fmt: skip
  classes = rows['mlp-mnist-classes-GD']
  assert len(classes['phi_class']) == 10 and len(classes['test_error_class']) == 10
  assert classes['overlap_with_parity'] is not None  # the parity cell of the same model
  config = io.read_json(os.path.join(sweep, 'points', 'mlp-mnist-parity-B16', 'config.json'))
  assert config['train']['batch_size'] == 16 and config['train']['lr'] == 0.5 * 16 / 64
  assert os.path.exists(os.path.join(sweep, 'table.md'))
  assert os.path.exists(os.path.join(sweep, 'observables_vs_train_error_mlp_classes.png'))
  with pytest.raises(UserError, match="unknown 'vgg' in --models"):
    settings.cells(['vgg'], ['parity'], [0], ['mnist'])
  assert not [c for c in settings.cells(['mlp', 'cnn'], ['parity'], [0], ['cifar10_rgb'])
              if c.model == 'mlp']  # fmt: skip
