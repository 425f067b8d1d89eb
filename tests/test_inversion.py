"""t*, phi, the inversion test, stragglers and t(eps) on hand-made histories (SPEC §5)."""

import numpy as np
import pytest

from manifold_dynamics import inversion
from manifold_dynamics.train import History


def make_history(R_plus, R_minus=None, D=None, train_error=None, masks=None):
  R_plus = np.atleast_2d(np.asarray(R_plus, np.float32))
  S, T = R_plus.shape
  R_minus = R_plus if R_minus is None else np.atleast_2d(R_minus)
  D = 2 - R_plus if D is None else np.atleast_2d(D)
  train_error = (
      np.linspace(0.5, 0.0, T)[None].repeat(S, 0)
      if train_error is None
      else np.atleast_2d(train_error)
  )
  masks = np.zeros((S, T, 10), bool) if masks is None else masks
  zeros = np.zeros((S, T), np.float32)
  return History(
      R_plus, R_minus, D, zeros, train_error, zeros, np.packbits(masks, axis=-1), masks.shape[-1]
  )


def test_inversion_detected_with_its_rise():
  curve = [0.9, 0.8, 0.7, 0.72, 0.75, 0.74]
  inv = inversion.curve_inversion(np.array([curve]), 'R_plus', delta=0.01)
  assert inv.t_star[0] == 2
  assert inv.rise[0] == pytest.approx(0.05, abs=1e-6)
  assert inv.inverted[0]
  assert not inversion.curve_inversion(np.array([curve]), 'R_plus', delta=0.06).inverted[0]


def test_monotone_and_flat_curves_are_not_inversions():
  monotone = np.array([[0.9, 0.8, 0.7, 0.6]])
  inv = inversion.curve_inversion(monotone, 'R_plus')
  assert inv.t_star[0] == 3 and inv.rise[0] == 0 and not inv.inverted[0]
  rising = np.array([[0.5, 0.6, 0.7]])  # minimum at epoch 0: not interior
  assert not inversion.curve_inversion(rising, 'R_plus').inverted[0]
  wiggle = np.array([[0.9, 0.895, 0.898, 0.894, 0.897]])  # random labels: below tolerance
  assert not inversion.curve_inversion(wiggle, 'R_plus').inverted[0]


def test_D_inverts_through_a_maximum():
  inv = inversion.curve_inversion(np.array([[0.3, 1.2, 1.25, 0.9, 0.8]]), 'D')
  assert inv.t_star[0] == 2 and inv.value[0] == pytest.approx(1.25)
  assert inv.rise[0] == pytest.approx(0.45) and inv.inverted[0]


def test_phi_is_mean_error_at_the_three_t_stars():
  R_plus = [[1.0, 0.5, 0.4, 0.6, 0.7]]  # t* = 2
  R_minus = [[1.0, 0.5, 0.6, 0.7, 0.8]]  # t* = 1
  D = [[0.1, 0.5, 0.6, 0.9, 0.3]]  # t* = 3
  err = [[0.5, 0.3, 0.2, 0.1, 0.0]]
  inv = inversion.analyse(make_history(R_plus, R_minus, D, err))
  assert [c.t_star[0] for c in inv.curves.values()] == [2, 1, 3]
  assert inv.phi[0] == pytest.approx((0.2 + 0.3 + 0.1) / 3)


def test_stragglers_are_the_mask_at_t_star():
  masks = np.zeros((2, 4, 13), bool)
  masks[0, 1, [0, 5, 12]] = True
  masks[1, 2, [3, 4]] = True
  masks[1, 1, 7] = True
  history = make_history(np.ones((2, 4)), masks=masks)
  sets = inversion.stragglers(history, np.array([1, 2]))
  assert [s.tolist() for s in sets] == [[0, 5, 12], [3, 4]]
  assert inversion.stragglers(history, 1)[1].tolist() == [7]


def test_first_epoch_below_handles_non_monotone_errors():
  err = np.array([[0.5, 0.2, 0.3, 0.1, 0.15, 0.05]])
  t = inversion.first_epoch_below(err, [0.6, 0.25, 0.2, 0.12, 0.1, 0.01])
  assert t.tolist() == [[0, 1, 1, 3, 3, -1]]


def test_at_train_error_reads_observables_at_t_eps():
  R_plus = np.array([[0.9, 0.8, 0.7, 0.75, 0.8], [0.9, 0.85, 0.8, 0.7, 0.72]])
  err = np.array([[0.5, 0.3, 0.1, 0.2, 0.0], [0.5, 0.4, 0.3, 0.2, 0.1]])
  values = inversion.at_train_error(make_history(R_plus, train_error=err), [0.3, 0.15, 0.05])
  np.testing.assert_allclose(values['R_plus'][0], [0.8, 0.7, 0.8])
  np.testing.assert_allclose(values['R_plus'][1], [0.8, 0.72, np.nan])
  assert values['epoch'].tolist() == [[1, 2, 4], [2, 4, -1]]


def test_summary_has_the_contract_keys():
  history = make_history(np.array([[1.0, 0.5, 0.4, 0.6, 0.7]] * 3))
  summary = inversion.summary(history, inversion.analyse(history))
  for key in ('t_star', 'phi', 'phi_mean', 'phi_std', 'n_stragglers', 'seeds', 'epochs'):
    assert key in summary
  assert set(summary['t_star']) == {'R_plus', 'R_minus', 'D'}
  assert summary['seeds'] == 3 and summary['epochs'] == 4 and len(summary['phi']) == 3
