"""Removal plans and the noisy test errors of retrained nets."""

import jax
import numpy as np

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.engine import train
from manifold_dynamics.studies import pruning
from tests.test_inversion import make_history
from tests.test_train import data  # noqa: F401  (the fixture)


def test_plan_removals_sets_and_sizes():
  rng = np.random.default_rng(0)
  masks = rng.random((3, 9, 40)) < np.linspace(0.5, 0.0, 9)[None, :, None]
  R_plus = np.tile(np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.65, 0.7, 0.75, 0.8]), (3, 1))  # t* = 4
  history = make_history(R_plus, train_error=masks.mean(-1), masks=masks)
  plan = pruning.plan_removals(history, eps_grid=[0.2], t_before=0.5, t_after=1.5, seed=0)
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


def test_noisy_test_error_at_sigma_zero_is_the_test_error(data):  # noqa: F811
  cfg = TrainConfig(depth=2, width=8, epochs=10, seeds=2, lr=0.5)
  weights = np.ones((2, 64), np.float32)
  weights[1, :20] = 0
  history, states = train.fit(cfg, data, log=None, weights=weights, return_state=True)
  logits_of = train.logits_function(cfg, data)
  errors = pruning.noisy_test_errors(logits_of, states, data, [0.0, 5.0], jax.random.PRNGKey(0))
  assert errors.shape == (2, 2)
  np.testing.assert_allclose(errors[:, 0], history.test_error[:, -1], atol=1e-6)
  assert np.all(errors[:, 1] >= 0) and np.all(errors[:, 1] <= 1)
