"""t*, phi, the inversion test, stragglers and t(eps) on hand-made histories (SPEC §5)."""

import numpy as np
import pytest

from manifold_dynamics.analysis import inversion
from manifold_dynamics.records import readings
from manifold_dynamics.records.history import History


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


def test_first_confirmed_and_global_extrema_of_a_curve_that_dips_twice():
  curve = np.array([[1.0, 0.8, 0.85, 0.86, 0.7, 0.7, 0.71, 0.75]])
  t_star, confirmed = inversion.first_confirmed(curve)
  assert (t_star[0], confirmed[0]) == (1, 2)  # 0.85 - 0.8 > 0.01 at epoch 2
  assert inversion.curve_inversion(curve, rule='global').t_star[0] == 4  # ties: the first
  first = inversion.curve_inversion(curve, rule='first')
  assert first.t_star[0] == 1 and first.inverted[0] and first.value[0] == 0.8
  # relative: the move back must exceed 0.2 x the drop 0.2 = 0.04; 0.05 does at epoch 2
  assert inversion.first_confirmed(curve, rho=0.2)[1][0] == 2
  # rho 0.3: 0.06 is not past 0.3 x 0.2, and 0.05 is not past 0.3 x 0.3 after the second dip
  assert inversion.first_confirmed(curve, rho=0.3)[1][0] == -1


def test_the_relative_criterion_sees_an_inversion_on_the_curves_own_scale():
  small = np.array([[1.0, 0.99, 0.98, 0.986, 0.986, 0.985]])  # drop 0.02, rise 0.006
  absolute = inversion.curve_inversion(small)
  relative = inversion.curve_inversion(small, rho=0.2)
  assert not absolute.inverted[0] and relative.inverted[0]
  assert relative.drop[0] == pytest.approx(0.02) and relative.rise[0] == pytest.approx(0.006)
  assert inversion.first_confirmed(small)[1][0] == -1  # never confirmed: global argmin
  assert inversion.first_confirmed(small, rho=0.2) == (np.array([2]), np.array([3]))
  D = -small  # centroid distances go through a maximum
  assert inversion.curve_inversion(D, 'D', rho=0.2).inverted[0]


def test_criteria_report_every_reading_and_where_it_differs_from_the_headline():
  t = np.arange(60.0)
  dip = lambda at, depth, width: depth * np.exp(-(((t - at) / width) ** 2))
  R = np.stack([1 - dip(10, 0.1, 3) - dip(40, 0.2, 5), 1 - dip(20, 0.1, 3)])
  history = History(
      R, R, 2 - R, np.ones((2, 60)), np.linspace(0.5, 0.0, 60)[None].repeat(2, 0),
      np.zeros((2, 60)), np.zeros((2, 60, 1), np.uint8), num_examples=8,
  )  # fmt: skip
  inv = inversion.analyse(history)
  out = inversion.criteria(history, reference=inv)
  assert out['global_absolute']['t_star']['R_plus'] == [40, 20]
  assert out['first_absolute']['t_star']['R_plus'] == [10, 20]
  assert out['first_absolute']['t_star_differs']['R_plus'] == 0.5
  assert out['global_absolute']['phi_mean'] == pytest.approx(float(np.mean(inv.phi)))
  assert set(out) == {
      'delta', 'rho', 'global_absolute', 'global_relative', 'first_absolute', 'first_relative',
      'after_transient_absolute', 'after_transient_relative',
  }  # fmt: skip


def test_class_stragglers_counts_each_class_in_s_t_star():
  labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])
  sets = [np.array([0, 4]), np.array([0, 1, 4, 5])]
  out = inversion.class_stragglers(sets, labels, {'test_error_class': [0.3, 0.0, 0.2]})
  np.testing.assert_allclose(out['straggler_fraction'], [0.75, 0.0, 0.375])
  assert out['straggler_fraction_vs_test_error_pearson'] == pytest.approx(
      np.corrcoef([0.75, 0.0, 0.375], [0.3, 0.0, 0.2])[0, 1]
  )


def test_observables_against_training_error_run_left_to_right_for_any_panel_count():
  """Training error decreases to the right with three panels (R+, R-, D) and with two
  (R_mean, D_mean): panels share x, so inverting each one in turn would undo itself."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  from manifold_dynamics.plotting import curves  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  binary = make_history(rng.random((2, 6)))
  ten = dataclasses.replace(
      binary,
      R_plus=None,
      R_minus=None,
      D=None,
      R_mean=rng.random((2, 6)),
      D_mean=rng.random((2, 6)),
  )
  for history, panels in ((binary, 3), (ten, 2)):
    fig = curves.observables_vs_train_error([history])
    assert len(fig.axes) == panels
    assert all(ax.xaxis_inverted() for ax in fig.axes)


# --- the reading after an initial transient (SPEC §8) -------------------------------------------


def falling_error(T, start=0.5, onset=1):
  """A training error that stays at `start` until epoch `onset`, then falls to 0."""
  e = np.full(T, start)
  e[onset:] = np.linspace(start * 0.85, 0.0, T - onset)
  return e[None]


def test_after_transient_skips_a_rise_and_a_first_epoch_dip():
  """A conv net's curve: a dip as the first step lands, a rise (the transient), then the
  segregating fall to the real minimum, and the move back."""
  curve = np.array([[0.5, 0.45, 0.47, 0.55, 0.7, 0.72, 0.6, 0.45, 0.40, 0.41, 0.43, 0.5]])
  error = falling_error(12, onset=2)
  first = inversion.curve_inversion(curve, rule='first')
  assert first.t_star[0] == 1 and first.inverted[0]  # the dip, an artefact of epoch 1
  reading = readings.after_transient(curve, error)
  assert reading.onset[0] == 2  # 0.5 x 0.85 <= 0.9 x 0.5 first at epoch 2
  assert reading.peak[0] == 5 and reading.height[0] == pytest.approx(0.72 - 0.47)
  assert (reading.t_star[0], reading.confirmed[0]) == (8, 10)  # 0.43 - 0.40 > 0.01
  assert reading.fall[0] == pytest.approx(0.72 - 0.40) and reading.transient[0]
  after = inversion.curve_inversion(curve, rule='after_transient', train_error_SxT=error)
  assert after.t_star[0] == 8 and after.inverted[0]
  # relative: the move back must pass 0.2 x the fall 0.32 = 0.064: 0.1 does at epoch 11
  assert readings.after_transient(curve, error, rho=0.2).confirmed[0] == 11
  D = inversion.curve_inversion(-curve, 'D', rule='after_transient', train_error_SxT=error)
  assert D.t_star[0] == 8  # a maximum of D is read the same way


def test_after_transient_equals_first_confirmed_without_a_transient():
  rng = np.random.default_rng(0)
  t = np.arange(200.0)
  dip = (
      1
      - 0.3 * np.exp(-(((t - 60) / 25) ** 2)) * (t < 60)
      - 0.3 * (t >= 60) * np.exp(-((t - 60) / 200))
  )  # falls from epoch 0 to 60, then rises
  curves = dip[None] + rng.normal(0, 0.001, (8, 200)).cumsum(1) * 0.1
  error = np.linspace(0.5, 0.01, 200)[None].repeat(8, 0)
  for rho in (None, 0.2):
    first = readings.first_confirmed(curves, rho=rho)
    reading = readings.after_transient(curves, error, rho=rho)
    assert np.all(reading.confirmed > 0) and not reading.transient.any()
    np.testing.assert_array_equal(reading.t_star, first[0])


def test_after_transient_wiggles_restarts_and_no_learning():
  error = falling_error(10)
  wiggly = [[1.0, 0.995, 0.999, 0.993, 0.998, 0.99, 0.995, 0.99, 0.995, 0.99]]
  assert readings.after_transient(np.array(wiggly), error).confirmed[0] == -1  # falls < 0.01
  # a small turn before any fall restarts the search from the new high: the fall is counted
  # from 0.9, not from the value at the onset
  restart = np.array([[0.85, 0.84, 0.86, 0.9, 0.8, 0.7, 0.75]])
  reading = readings.after_transient(restart, falling_error(7))
  assert reading.peak[0] == 3 and reading.t_star[0] == 5 and reading.confirmed[0] == 6
  flat_error = np.full((1, 7), 0.5)  # never learns: no onset, no segregation, no inversion
  never = readings.after_transient(restart, flat_error)
  assert never.onset[0] == -1 and never.confirmed[0] == -1 and never.peak[0] == -1
  assert not inversion.curve_inversion(
      restart, rule='after_transient', train_error_SxT=flat_error
  ).inverted[0]
  with pytest.raises(ValueError, match='needs the training errors'):
    inversion.curve_inversion(restart, rule='after_transient')


def test_the_summary_reports_each_curves_transient():
  t = np.arange(40.0)
  R = 0.5 + 0.2 * np.exp(-(((t - 8) / 3) ** 2)) - 0.3 * np.exp(-(((t - 25) / 6) ** 2))
  history = make_history(np.stack([R, 1 - 0.3 * np.exp(-(((t - 25) / 6) ** 2))]))
  summary = inversion.summary(history, inversion.analyse(history, rule='after_transient'))
  transient = summary['transient']['R_plus']
  assert transient['fraction'] == 0.5 and transient['epoch'][1] == -1
  assert 6 <= transient['epoch'][0] <= 10 and transient['height'][0] > 0.1
  assert summary['t_star']['R_plus'][0] == pytest.approx(25, abs=2)
