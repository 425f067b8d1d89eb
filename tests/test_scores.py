"""Example-difficulty scores: the in-scan accumulators against direct recomputation, GraNd
against per-example jax.grad, the comparison statistics on hand-made vectors, label noise,
examples.csv, and experiments/scores.py end to end with its bad inputs."""

import csv
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import flagsaver

from manifold_dynamics.analysis import scores as score_stats
from manifold_dynamics.config import TrainConfig
from manifold_dynamics.data import task as task_lib
from manifold_dynamics.engine import contract, difficulty, evaluate, preemption, train
from manifold_dynamics.engine.models.mlp import MLP
from manifold_dynamics.engine.state import targets
from manifold_dynamics.records import examples, io, store
from tests.conftest import make_image_splits, write_mnist_like
from tests.test_experiments import TINY, inversion_main, load_experiment
from tests.test_resume import assert_states_equal, interrupt_after

scores_main = load_experiment('scores')

CFG = TrainConfig(
    model_settings=dict(depth=3, width=8),
    lr=0.5,
    epochs=12,
    seeds=2,
    chunk_epochs=5,
    scores=('all',),
    score_epochs=(0, 4, 9),
)


@pytest.fixture(scope='module')
def scored(noisy_data):
  """A small run recorded with every score, and its state and history."""
  history, state = train.fit(CFG, noisy_data, log=None, return_state=True)
  return history, state


def replay_epochs(cfg, data):
  """Per epoch t = 0 .. T-1, each seed's logits (seeds, 2, P) and state, stepping by hand."""
  cfg = dataclasses.replace(cfg, scores=(), score_epochs=())
  state, data = train.start(cfg, data)
  trainer = train.make_train(cfg, data)
  step = jax.jit(jax.vmap(lambda s, t: trainer.run_epochs(s, data, 1, t)[0], in_axes=(0, None)))
  model = MLP(3, 8, cfg.activation, cfg.init_scale, feature_major=True)
  logits, states = [], []
  for t in range(cfg.epochs):
    states.append(state)
    logits.append(
        jax.vmap(
            lambda s: model.apply(
                {'params': s.train.params}, data.x_train, s.standardiser, data.columns
            )[0]
        )(state)
    )
    state = step(state, t)
  return np.stack(logits, axis=1), states, data


def test_accumulated_scores_equal_a_direct_recomputation(scored, noisy_data):
  history, state = scored
  columns = difficulty.finalize(state.scores, CFG.score_epochs)
  logits_SxTx2xP, _, _ = replay_epochs(CFG, noisy_data)
  label = np.asarray(targets(noisy_data.y_train, 2))
  z = logits_SxTx2xP.astype(np.float64)
  p = np.exp(z - z.max(axis=2, keepdims=True))
  p /= p.sum(axis=2, keepdims=True)
  p_true = np.take_along_axis(p, label[None, None, None, :], axis=2)[:, :, 0]
  margin = (
      np.take_along_axis(z, label[None, None, None, :], axis=2)[:, :, 0]
      - np.take_along_axis(z, 1 - label[None, None, None, :], axis=2)[:, :, 0]
  )
  np.testing.assert_allclose(columns['confidence'], p_true.mean(axis=1), atol=1e-5)
  np.testing.assert_allclose(columns['variability'], p_true.std(axis=1), atol=1e-4)
  np.testing.assert_allclose(columns['aum'], margin.mean(axis=1), rtol=1e-4, atol=1e-4)
  for e, t in enumerate(CFG.score_epochs):
    onehot = np.eye(2)[label].T  # (2, P)
    el2n = np.sqrt(np.sum((p[:, t] - onehot) ** 2, axis=1))
    np.testing.assert_allclose(columns[f'el2n_t{t}'], el2n, atol=1e-5)

  # Forgetting and learning from the packed masks of the history (epochs 0 .. T-1).
  correct = ~history.mistakes(slice(0, CFG.epochs))  # (S, T, P)
  np.testing.assert_array_equal(columns['correctness'], correct.mean(axis=1).astype(np.float32))
  forgotten = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1)
  np.testing.assert_array_equal(columns['forgetting_events'], forgotten)
  assert forgotten.max() > 0  # the run does forget some examples
  T = CFG.epochs
  for s in range(CFG.seeds):
    for i in range(history.num_examples):
      c = correct[s, :, i]
      trailing = T if c.all() else int(np.argmin(c[::-1]))  # epochs correct at the end
      learned = T - trailing if c[-1] else T
      assert columns['learned_epoch'][s, i] == learned
      assert columns['ever_learned'][s, i] == c.any()


def test_grand_equals_per_example_jax_grad(scored, noisy_data):
  cfg = dataclasses.replace(CFG, scores=(), score_epochs=())
  state, data = train.start(cfg, noisy_data)
  state = jax.tree.map(lambda x: x[0], state)  # seed 0, after one update
  trainer = train.make_train(cfg, data)
  state, _ = trainer.run_epochs(state, data, 1, 0)
  got = trainer.example_scores(state, data)['grand']

  model = MLP(3, 8, cfg.activation, cfg.init_scale)
  x = noisy_data.x_train  # all N columns (the reference never leaves any out)
  labels = targets(noisy_data.y_train, 2)

  def loss_i(params, x_N, label):
    logits, _ = model.apply({'params': params}, x_N[None], state.standardiser)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label[None])[0]

  grads = jax.vmap(jax.grad(loss_i), in_axes=(None, 0, 0))(state.train.params, x, labels)
  want = jnp.sqrt(sum(jnp.sum(g.reshape(len(x), -1) ** 2, axis=1) for g in jax.tree.leaves(grads)))
  np.testing.assert_allclose(got, want, rtol=2e-4)
  assert float(jnp.std(want)) > 0


def test_replay_to_an_epoch_equals_the_in_scan_capture(scored, noisy_data):
  _, state = scored
  columns = difficulty.finalize(state.scores, CFG.score_epochs)
  epochs = np.array([4, 9])  # one epoch per seed, as a seed's own t*
  got = evaluate.replay_at(CFG, noisy_data, epochs, ('el2n', 'grand'))
  for s, t in enumerate(epochs):
    np.testing.assert_allclose(got['el2n'][s], columns[f'el2n_t{t}'][s], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got['grand'][s], columns[f'grand_t{t}'][s], rtol=1e-4, atol=1e-6)


def test_replay_through_the_contract_equals_the_in_scan_capture():
  """Ten classes and mini-batches (the contract, not the MLP's fast path): replaying each
  seed to its epoch gives the EL2N and GraNd the scan recorded there."""
  rng = np.random.default_rng(3)
  y, y_test = rng.integers(0, 4, 96), rng.integers(0, 4, 32)
  x = rng.normal(size=(96, 6)) + y[:, None] / 2
  x_test = rng.normal(size=(32, 6)) + y_test[:, None] / 2
  data = train.TrainData.from_task(task_lib.Task.from_arrays(x, y, x_test, y_test, 'classes'))
  cfg = dataclasses.replace(CFG, batch_size=32, scores=('el2n', 'grand'))
  assert isinstance(train.network(cfg, data), contract.ModuleNetwork)
  _, state = train.fit(cfg, data, log=None, return_state=True)
  columns = difficulty.finalize(state.scores, cfg.score_epochs)
  epochs = np.array([9, 4])
  got = evaluate.replay_at(cfg, data, epochs, ('el2n', 'grand'))
  for s, t in enumerate(epochs):
    np.testing.assert_allclose(got['el2n'][s], columns[f'el2n_t{t}'][s], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got['grand'][s], columns[f'grand_t{t}'][s], rtol=1e-4, atol=1e-6)


def test_scores_leave_training_unchanged(scored, noisy_data):
  history, _ = scored
  plain = train.fit(dataclasses.replace(CFG, scores=(), score_epochs=()), noisy_data, log=None)
  for name in plain.ARRAYS + ('mistakes_packed',):
    np.testing.assert_array_equal(getattr(plain, name), getattr(history, name))


def test_scores_survive_an_interruption_bit_for_bit(scored, noisy_data, tmp_path):
  """The accumulators are part of the checkpointed state: SIGTERM, resume, same scores."""
  _, state = scored
  history_store = lambda: store.HistoryStore(str(tmp_path / 'h'), np.arange(256))
  with pytest.raises(preemption.Interrupted):
    train.fit(CFG, noisy_data, log=interrupt_after(5), store=history_store())
  _, resumed = train.fit(CFG, noisy_data, log=None, store=history_store(), return_state=True)
  assert_states_equal(resumed.scores, state.scores)


def test_spearman_on_hand_made_columns():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(3, 500))
  columns = {
      'a': a,
      'cubed': a**3,  # monotone: rho = 1
      'negated': -2 * a,  # rho = -1
      'noise': rng.normal(size=(3, 500)),  # independent: rho ~ 0
      'constant': np.ones((3, 500)),  # no ranks: no value
  }
  rho = score_stats.spearman(columns, list(columns))
  assert rho['a']['cubed']['mean'] == pytest.approx(1.0)
  assert rho['a']['negated']['mean'] == pytest.approx(-1.0)
  assert abs(rho['a']['noise']['mean']) < 0.15 and rho['a']['noise']['std'] > 0
  assert rho['a']['constant'] is None


def test_top_k_orientation_ties_and_set_statistics():
  values = np.array([0.0, 5.0, 5.0, 5.0, 1.0, 9.0])
  tops = {tuple(score_stats.top_k(values, 2, np.random.default_rng(s))) for s in range(40)}
  assert tops == {(1, 5), (2, 5), (3, 5)}  # the tie at 5 broken at random
  assert list(score_stats.top_k(values, 2, np.random.default_rng(0), bottom=True)) == [0, 4]
  columns = {'confidence': np.array([[0.9, 0.1, 0.5, 0.2]])}  # low confidence = hard
  assert list(score_stats.top_k_sets(score_stats.hardness(columns, 'confidence'), [2])[0]) == [1, 3]

  sets, reference = [np.array([0, 1, 2]), np.array([5])], [np.array([1, 2, 3]), np.array([6])]
  np.testing.assert_allclose(score_stats.jaccard(sets, reference), [0.5, 0.0])
  out = score_stats.compare_with(sets, reference, 10)
  assert out['overlap_mean'] == 1.0 and out['jaccard'] == 0.25
  assert out['null_overlap_mean'] == pytest.approx((3 * 3 / 10 + 1 / 10) / 2)

  hits = score_stats.label_noise_hits(
      [np.array([0, 1, 2, 3]), np.array([2, 9])],
      np.array([1, 2, 9]),
      [np.array([1, 2, 3]), np.array([4, 5, 6])],
  )
  assert hits['precision'] == pytest.approx((2 / 4 + 2 / 2) / 2)
  assert hits['recall'] == pytest.approx((2 / 3 + 2 / 3) / 2)
  assert hits['precision_at_flipped'] == pytest.approx((2 / 3 + 0) / 2)

  learned = np.array([[0, 7, 9, 3, 12], [0, 0, 8, 1, 2]])  # learned for good at these epochs
  out = score_stats.last_to_leave(
      learned, [np.array([2, 4]), np.array([2])], t_star=np.array([5, 5])
  )
  assert out['learned_after_t_star'] == 2.0  # seed 0: examples 1, 2, 4 (> 5); seed 1: 2
  assert out['straggler_fraction_of_later'] == pytest.approx((2 / 3 + 1) / 2)


def test_label_flip_is_exact_saved_and_leaves_the_test_set():
  raw = task_lib.sources.RawSplits(*make_image_splits(200, 30))
  task = task_lib.make_task(raw, 200)
  noisy, flipped = task_lib.flip_labels(task, 0.1)
  assert len(flipped) == 20 and len(np.unique(flipped)) == 20
  np.testing.assert_array_equal(flipped, task_lib.flipped_indices(200, 0.1))  # reproducible
  changed = np.flatnonzero(noisy.y_train != task.y_train)
  np.testing.assert_array_equal(changed, flipped)
  np.testing.assert_array_equal(noisy.y_train[flipped], -task.y_train[flipped])
  np.testing.assert_array_equal(noisy.y_test, task.y_test)
  np.testing.assert_array_equal(noisy.x_train, task.x_train)


def test_examples_csv_rows_follow_the_split_order(tmp_path):
  P = 6
  split_indices = np.array([40, 12, 33, 7, 90, 15])  # as a permuted or sliced T would be
  task = task_lib.Task(
      np.zeros((P, 4), np.float32),
      np.array([1, -1, 1, -1, 1, 1], np.int32),
      np.zeros((1, 4), np.float32),
      np.ones(1, np.int32),
      split_indices,
      np.array([2, 3, 4, 5, 6, 8]),
  )
  columns = {
      'aum': np.array([np.arange(P), np.arange(P) + 2.0]),
      'straggler': np.array([[0, 1, 0, 0, 0, 1], [0, 1, 0, 1, 0, 0]]),
  }
  path = examples.write_examples_csv(str(tmp_path / 'e.csv'), columns, task, np.array([1]))
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert [int(r['index']) for r in rows] == sorted(split_indices)
  for r in rows:
    i = int(np.flatnonzero(split_indices == int(r['index']))[0])  # position in T
    assert int(r['class']) == task.classes_train[i] and int(r['label']) == task.y_train[i]
    assert float(r['aum_mean']) == pytest.approx(i + 1.0)
    assert float(r['aum_std']) == pytest.approx(1.0)
    assert float(r['straggler_frequency']) == columns['straggler'][:, i].mean()
    assert int(r['flipped']) == (i == 1) and int(r['true_label']) == task.y_train[i] * (
        -1 if i == 1 else 1
    )


SCORES_TINY = dict(
    train_size=96,
    epochs=40,
    seeds=4,
    chunk_epochs=20,
    width=6,
    lr=0.01,
    score_epochs=['2', '5'],
    max_base_seeds=1,
    prune_scores=['straggler', 'aum'],
    sigmas=['0', '1'],
)


@pytest.fixture(scope='module')
def scores_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('scores')
  data_dir = str(root / 'tiny_mnist')
  write_mnist_like(data_dir, n_train=96)
  workdir = str(root / 'run')
  with flagsaver.flagsaver(data_dir=data_dir, workdir=workdir, label_noise=0.1, **SCORES_TINY):
    scores_main.main(['scores.py'])
  return data_dir, workdir


def test_scores_writes_a_complete_run_directory(scores_run):
  _, workdir = scores_run
  files = set(os.listdir(workdir))
  for name in ('data_map', 'hardest_examples', 'prune_test_error_vs_sigma'):
    assert {f'{name}.png', f'{name}.pdf'} <= files
  assert {
      'config.json',
      'history',
      'history_prune',
      'scores.npz',
      'stragglers.npz',
      'examples.csv',
      'label_noise.npz',
      'removals.npz',
      'summary.json',
  } <= files
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  names = summary['scores']
  assert {
      'straggler',
      'forgetting_events',
      'el2n_tstar',
      'grand_tstar',
      'el2n_t2',
      'grand_t5',
      'confidence',
      'variability',
      'correctness',
      'aum',
      'input_norm',
  } <= set(names)
  assert set(summary['spearman']) == set(names) == set(summary['stability'])
  assert summary['spearman']['straggler']['straggler']['mean'] == pytest.approx(1.0)
  top = summary['topk_vs_stragglers']['straggler']
  assert top['jaccard'] == 1.0 and top['overlap_mean'] == summary['k_mean']
  for n in names:
    assert {'overlap_mean', 'jaccard', 'z'} <= set(summary['topk_vs_stragglers'][n])
    assert {'z', 'shared_fraction'} <= set(summary['stability'][n])
    assert {'precision', 'recall', 'precision_at_flipped'} <= set(summary['label_noise'][n])
  assert set(summary['prune']) == {
      'top:straggler',
      'bottom:straggler',
      'top:aum',
      'bottom:aum',
      'random',
      'none',
  }
  assert len(summary['prune']['top:aum']['inversion']) == 1
  assert set(summary['prune']['random']['test_error']) == {'0', '1'}

  saved = np.load(os.path.join(workdir, 'label_noise.npz'))
  np.testing.assert_array_equal(saved['flipped'], task_lib.flipped_indices(96, 0.1))
  assert summary['label_noise']['flipped'] == 10
  with open(os.path.join(workdir, 'examples.csv')) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 96 and sum(int(r['flipped']) for r in rows) == 10
  recorded = io.load_scores(os.path.join(workdir, 'scores.npz'))
  assert recorded['aum'].shape == (4, 96)
  freq = recorded['straggler'].mean(axis=0)
  np.testing.assert_allclose([float(r['straggler_frequency']) for r in rows], freq)


def test_scores_from_an_inversion_run_recorded_with_them(scores_run, tmp_path):
  data_dir, _ = scores_run
  source = str(tmp_path / 'inv')
  tiny = dict(TINY, width=6, lr=0.5)
  with flagsaver.flagsaver(
      data_dir=data_dir, workdir=source, scores=['aum', 'el2n'], score_epochs=['3'], **tiny
  ):
    inversion_main.main(['inversion.py'])
  out = str(tmp_path / 'cmp')
  with flagsaver.flagsaver(
      from_run=source, workdir=out, scores=['aum', 'el2n'], score_epochs=['3'], max_base_seeds=0
  ):
    scores_main.main(['scores.py'])
  summary = io.read_json(os.path.join(out, 'summary.json'))
  assert set(summary['scores']) == {'straggler', 'el2n_tstar', 'aum', 'el2n_t3'}
  assert 'prune' not in summary and not os.path.exists(os.path.join(out, 'history'))
  source_scores = io.load_scores(os.path.join(source, 'scores.npz'))
  np.testing.assert_array_equal(
      io.load_scores(os.path.join(out, 'scores.npz'))['aum'], source_scores['aum']
  )


@pytest.mark.parametrize(
    'overrides, message',
    [
        (dict(scores=['el2n', 'bogus']), "unknown score 'bogus' in --scores"),
        (dict(score_epochs=['5', '40']), '--score_epochs=40 is beyond the run'),
        (dict(prune_scores=['nope']), "unknown score 'nope' in --prune_scores"),
    ],
)
def test_bad_score_flags_fail_in_one_line(overrides, message, mnist_dir, tmp_path, capsys):
  flags_ = dict(SCORES_TINY, **overrides)
  with flagsaver.flagsaver(data_dir=mnist_dir, workdir=str(tmp_path / 'r'), **flags_):
    with pytest.raises(SystemExit):
      scores_main.main(['scores.py'])
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1


def test_from_run_errors_name_the_cause(scores_run, tmp_path, capsys):
  data_dir, _ = scores_run
  source = str(tmp_path / 'plain')
  with flagsaver.flagsaver(data_dir=data_dir, workdir=source, **TINY):
    inversion_main.main(['inversion.py'])
  cases = [
      (
          dict(scores=['aum']),
          'was recorded without the scores aum; record them with python '
          'experiments/inversion.py --scores=aum',
      ),
      (dict(scores=['aum'], score_epochs=['30']), '--score_epochs=30 is beyond the run'),
      (
          dict(scores=['input_norm'], dataset='fashion_mnist'),
          'is a mnist run but --dataset=fashion_mnist',
      ),
  ]
  for overrides, message in cases:
    with flagsaver.flagsaver(from_run=source, workdir=str(tmp_path / 'x'), **overrides):
      with pytest.raises(SystemExit):
        scores_main.main(['scores.py'])
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
