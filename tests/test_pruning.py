"""Removal plans and the noisy test errors of retrained nets."""

import os

import jax
import numpy as np
import pytest

from manifold_dynamics.analysis import grid, removals
from manifold_dynamics.config import TrainConfig
from manifold_dynamics.engine import evaluate, train
from manifold_dynamics.studies import pruning
from tests.test_inversion import make_history
from tests.test_train import data  # noqa: F401  (the fixture)


def test_removals_around_t_star_sets_and_sizes():
  rng = np.random.default_rng(0)
  masks = rng.random((3, 9, 40)) < np.linspace(0.5, 0.0, 9)[None, :, None]
  R_plus = np.tile(np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.65, 0.7, 0.75, 0.8]), (3, 1))  # t* = 4
  history = make_history(R_plus, train_error=masks.mean(-1), masks=masks)
  plan = removals.around_t_star(history, eps_grid=[0.2], t_before=0.5, t_after=1.5, seed=0)
  assert plan.kinds() == [
      'stragglers',
      'before_t_star',
      'after_t_star',
      'random',
      'eps=0.2',
      'random_eps=0.2',
  ]
  for s in range(3):
    straggle = plan.removed[plan.rows('stragglers')[s]]
    np.testing.assert_array_equal(straggle, np.flatnonzero(masks[s, 4]))
    np.testing.assert_array_equal(
        plan.removed[plan.rows('before_t_star')[s]], np.flatnonzero(masks[s, 2])
    )
    np.testing.assert_array_equal(
        plan.removed[plan.rows('after_t_star')[s]], np.flatnonzero(masks[s, 6])
    )
    random = plan.removed[plan.rows('random')[s]]
    assert len(random) == len(straggle) and len(np.unique(random)) == len(random)
  weights = plan.weights(40)
  assert weights.shape == (len(plan.kind), 40)
  for r, removed in enumerate(plan.removed):
    assert np.all(weights[r, removed] == 0) and weights[r].sum() == 40 - len(removed)


def test_removals_around_t_star_reads_t_star_by_the_base_runs_rule():
  """A curve that dips twice: 'first' removes S(t) at the first confirmed minimum (epoch 2),
  'global' at the deeper second one (epoch 6)."""
  masks = np.zeros((1, 9, 20), bool)
  for t in range(9):
    masks[0, t, t:] = True  # a different set at every epoch
  R_plus = [1.0, 0.8, 0.6, 0.7, 0.65, 0.55, 0.5, 0.6, 0.7]
  history = make_history(R_plus, masks=masks)
  for rule, t_star in (('first', 2), ('global', 6)):
    plan = removals.around_t_star(history, rule=rule)
    removed = plan.removed[plan.rows('stragglers')[0]]
    np.testing.assert_array_equal(removed, np.flatnonzero(masks[0, t_star]))


def test_noisy_test_error_at_sigma_zero_is_the_test_error(data):  # noqa: F811
  cfg = TrainConfig(epochs=10, seeds=2, lr=0.5, model_settings=dict(depth=2, width=8))
  weights = np.ones((2, 64), np.float32)
  weights[1, :20] = 0
  history, states = train.fit(cfg, data, log=None, weights=weights, return_state=True)
  logits_of = train.logits_function(cfg, data)
  errors = evaluate.noisy_test_errors(logits_of, states, data, [0.0, 5.0], jax.random.PRNGKey(0))
  assert errors.shape == (2, 2)
  np.testing.assert_allclose(errors[:, 0], history.test_error[:, -1], atol=1e-6)
  assert np.all(errors[:, 1] >= 0) and np.all(errors[:, 1] <= 1)


def test_the_settings_grid_prunes_its_cells(mnist_dir, tmp_path, capsys):
  """--prune on a grid cell: retrained without S(t*) and without a random set of its size,
  the row reports both; a second run of the command finds everything done. (Slow learning
  on noisy labels: 64 examples in 784 dimensions are fitted, and nothing inverts, within a
  few epochs at a larger lr; here S(t*) is the set still misclassified at the end.)"""
  from absl.testing import flagsaver

  from manifold_dynamics.errors import UserError
  from manifold_dynamics.records import io
  from tests.test_experiments import load_experiment

  settings_main = load_experiment('settings')
  sweep = str(tmp_path / 'grid')
  flags = dict(
      data_dir=mnist_dir, workdir=sweep, models=['mlp'], datasets=['mnist'], tasks=['parity'],
      batches=['0'], train_size=64, epochs=12, seeds=2, chunk_epochs=6, width=6, depth=3, lr=0.02,
      label_noise=0.2, prune=True, prune_base_seeds=2, test_every=0,
  )  # fmt: skip
  with flagsaver.flagsaver(**flags):
    settings_main.main(['settings.py'])
  pruned = io.read_json(os.path.join(sweep, 'prune', 'mlp-mnist-parity-GD', 'summary.json'))
  assert pruned['base_seeds'] == 2 and pruned['t_star_rule'] == 'first'
  assert pruned['base_epochs'] == 12  # the base run's last epoch, where its test error is read
  for kind in ('stragglers', 'random'):  # full batches: read up to where the loss first rose
    k = pruned[kind]
    assert len(k['t_star']) == len(k['loss_fell_until']) == 2
    assert k['inversion_before_loss_rise'] == [
        i and t <= u for i, t, u in zip(k['inversion'], k['t_star'], k['loss_fell_until'])
    ]
  (row,) = io.read_json(os.path.join(sweep, 'summary.json'))['rows']
  last = row['last_layer']  # S(t*) and its stability at hidden_1 too, curve by curve
  assert last['layer'] == 'hidden_1' and set(last['curves']) == {'R_plus', 'R_minus', 'D'}
  assert all(c['n_stragglers_mean'] > 0 and 'sets' not in c for c in last['curves'].values())
  prune = row['prune']
  assert prune['stragglers']['removed_mean'] == prune['random']['removed_mean'] > 0
  assert set(prune['stragglers']['noisy_test_error_mean']) == {f'{s:g}' for s in pruning.SIGMAS}
  assert prune['tradeoff']['sigma'] == max(pruning.SIGMAS)
  before = np.mean(pruned['stragglers']['inversion_before_loss_rise'])
  assert prune['stragglers']['before_loss_rise_fraction'] == before
  assert 'w/o S(t*)' in open(os.path.join(sweep, 'table.md')).read()
  for layer in ('', '_hidden_1'):  # the first measured layer, and the last one
    assert os.path.exists(os.path.join(sweep, f'observables_vs_train_error_mlp_parity{layer}.png'))
  with flagsaver.flagsaver(**flags):  # resumes: nothing left to train or prune
    settings_main.main(['settings.py'])
  capsys.readouterr()
  with flagsaver.flagsaver(tabulate=[sweep], models=['mlp', 'cnn'], datasets=['mnist']):
    settings_main.main(['settings.py'])  # every cell of the grid, from the sweeps given
  cells, table = capsys.readouterr().out.split('\n\n')
  assert 'z vs MLP' in cells and 'hidden_1: ' in cells.splitlines()[2]  # the last layer's S(t*)
  table = table.splitlines()
  assert len(table) == 2 + 4  # header, rule, parity and classes at GD and B = 128
  phi = f'{row["phi_mean"]:.3f} ('
  assert table[2].startswith('| mnist | parity | GD | ' + phi) and 'tradeoff' in table[2]
  assert '%; hidden_1 ' in table[2]  # and at the last measured layer
  assert table[2].endswith('| not run |') and table[3].count('not run') == 2
  with pytest.raises(UserError, match='has no config.json'):
    grid.collected_rows([str(tmp_path)])
