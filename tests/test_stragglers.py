"""Straggler sets and their stability statistics."""

import numpy as np
import pytest

from manifold_dynamics.analysis import stragglers
from tests.test_inversion import make_history


def test_sets_at_t_star_and_at_eps():
  masks = np.zeros((2, 5, 12), bool)
  masks[:, :2] = True
  masks[0, 2, [1, 2, 3]] = True
  masks[1, 2, [2, 3]] = True
  masks[0, 3, [2]] = True
  masks[1, 3, [3, 9]] = True
  R_plus = np.array([[1.0, 0.8, 0.6, 0.7, 0.8], [1.0, 0.8, 0.7, 0.6, 0.7]])  # t* = 2, 3
  err = masks.mean(axis=-1)
  history = make_history(R_plus, train_error=err, masks=masks)
  assert [s.tolist() for s in stragglers.at_t_star(history)] == [[1, 2, 3], [3, 9]]
  # t(eps = 2/12): seed 0 first reaches it at epoch 3, seed 1 at epoch 2.
  assert [s.tolist() for s in stragglers.at_train_error(history, 2 / 12)] == [[2], [2, 3]]
  # never reached: the last epoch
  assert [s.tolist() for s in stragglers.at_train_error(history, -1.0)] == [[], []]


def test_overlap_against_the_hypergeometric_null():
  P = 1000
  sets_0 = [np.arange(0, 100), np.arange(50, 130)]
  sets_1 = [np.arange(50, 250), np.arange(0, 60)]
  ov = stragglers.overlap(sets_0, sets_1, P)
  assert ov.observed.tolist() == [50, 10]
  np.testing.assert_allclose(ov.null_mean, [100 * 200 / P, 80 * 60 / P])
  np.testing.assert_allclose(ov.shared_fraction, [0.5, 10 / 80])
  assert ov.z == pytest.approx((30 - (20 + 4.8) / 2) / 20)


def test_null_mean_and_spread_match_sampling():
  rng = np.random.default_rng(0)
  sizes_0, sizes_1, P = np.array([40, 120]), np.array([90, 30]), 500
  sampled = stragglers.sample_null_overlaps(sizes_0, sizes_1, P, 4000, rng)
  ov = stragglers.overlap([np.arange(n) for n in sizes_0], [np.arange(n) for n in sizes_1], P)
  np.testing.assert_allclose(sampled.mean(axis=1), ov.null_mean, rtol=0.03)
  np.testing.assert_allclose(sampled.var(axis=1), ov.null_var, rtol=0.1)


def test_identical_sets_are_far_above_the_null():
  sets = [np.arange(0, 50) + k for k in range(6)]  # heavily overlapping
  ov = stragglers.within_run_overlap(sets, 2000)
  assert len(ov.observed) == 3 and ov.z > 10 and ov.z_null > 10
  assert ov.summary()['shared_fraction'] == pytest.approx(49 / 50)
