"""The inversion stop rule on hand-made histories, and early-stopped training against full runs."""

import dataclasses
import types

import numpy as np

from manifold_dynamics.analysis import inversion
from manifold_dynamics.config import TrainConfig
from manifold_dynamics.engine import stopping, train
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import readings
from manifold_dynamics.records.history import History


def records(R_plus, R_minus=None, D=None):
  """A chunk of records (seeds, epochs) from curves; missing curves invert early."""
  R_plus = np.atleast_2d(np.asarray(R_plus, np.float64))
  early = np.array([1.0, 0.5, 0.6, 0.7])  # min at epoch 1, confirmed (0.1 > 0.02) at epoch 2
  pad = lambda c: np.pad(c, (0, R_plus.shape[1] - len(c)), mode='edge')
  default = np.tile(pad(early), (len(R_plus), 1))
  return types.SimpleNamespace(
      R_plus=R_plus,
      R_minus=default if R_minus is None else np.atleast_2d(R_minus),
      D=-default if D is None else np.atleast_2d(D),
  )


def feed(rule, chunk, sizes):
  """Feeds `chunk` to `rule` in pieces of the given sizes."""
  start = 0
  for n in sizes:
    piece = types.SimpleNamespace(**{k: v[:, start : start + n] for k, v in vars(chunk).items()})
    rule.update(piece)
    start += n
  return rule


def test_confirms_after_a_move_back_above_delta_plus_margin():
  curve = [1.0, 0.9, 0.8, 0.7, 0.71, 0.715, 0.725, 0.8, 0.9]
  rule = feed(stopping.InversionStop(1, rho=0.0), records(curve), [len(curve)])
  # the minimum 0.7 at epoch 3; 0.725 - 0.7 = 0.025 > 0.02 first at epoch 6
  assert rule.confirmed_epoch[0, 0] == 6 and rule.done


def test_chunking_does_not_change_the_decision():
  rng = np.random.default_rng(0)
  curves = np.cumsum(rng.normal(0, 0.01, (5, 60)), axis=1) + 1.0
  whole = feed(stopping.InversionStop(5, rho=0.0), records(curves), [60])
  for sizes in ([1] * 60, [7] * 8 + [4], [30, 30]):
    np.testing.assert_array_equal(
        feed(stopping.InversionStop(5, rho=0.0), records(curves), sizes).confirmed_epoch,
        whole.confirmed_epoch,
    )


def test_wiggles_before_the_minimum_and_boundary_minima_do_not_confirm():
  wiggly = [1.0, 0.9, 0.915, 0.85, 0.8, 0.81, 0.75, 0.74, 0.74]  # moves back 0.015 < 0.02
  rising = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0]  # minimum at epoch 0: not interior
  rule = feed(stopping.InversionStop(2, rho=0.0), records([wiggly, rising]), [9])
  assert np.all(rule.confirmed_epoch[:, 0] == -1) and not rule.done
  assert rule.seeds_confirmed == 0


def test_D_inverts_through_a_maximum_and_every_observable_is_needed():
  D = [0.1, 0.5, 0.9, 1.0, 0.99, 0.97]  # max at 3, falls 0.03 > 0.02 at epoch 5
  flat = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8]  # R- never moves back
  rule = feed(
      stopping.InversionStop(1, rho=0.0), records([1, 0.5, 0.6, 0.7, 0.7, 0.7], flat, D), [6]
  )
  assert rule.confirmed_epoch[0].tolist() == [2, -1, 5] and not rule.done


def test_stop_after_a_tolerance_follows_delta_and_margin():
  curve = [1.0, 0.8, 0.815, 0.83]
  assert (
      feed(
          stopping.InversionStop(1, delta=0.01, margin=0.0, rho=0.0), records(curve), [4]
      ).confirmed_epoch[0, 0]
      == 2
  )
  assert feed(stopping.InversionStop(1, rho=0.0), records(curve), [4]).confirmed_epoch[0, 0] == 3


def test_early_stopped_run_gives_the_full_runs_t_star_phi_and_stragglers(noisy_data):
  # lr 0.2: smooth dynamics (at lr 0.5 this task oscillates and an early wiggle can pass for
  # the inversion); seed 0 inverts on R+, R- and D, confirmed by epoch 122.
  cfg = TrainConfig(seeds=1, epochs=300, lr=0.2, chunk_epochs=16)
  full = train.fit(cfg, noisy_data, log=None)
  lines = []
  stopped = train.fit(
      dataclasses.replace(cfg, stop_after_inversion=True), noisy_data, log=lines.append
  )
  assert stopped.num_epochs < cfg.epochs and stopped.num_epochs % 16 == 0
  assert 'stopping at epoch' in lines[-1]
  for name in History.ARRAYS:  # the stopped run is the full run's first epochs
    np.testing.assert_array_equal(
        getattr(stopped, name)[:, :-1], getattr(full, name)[:, : stopped.num_epochs]
    )
  a, b = inversion.analyse(full), inversion.analyse(stopped)
  for name in history_lib.OBSERVABLES:
    assert np.all(b.curves[name].inverted)
    np.testing.assert_array_equal(a.curves[name].t_star, b.curves[name].t_star)
  np.testing.assert_array_equal(a.phi, b.phi)
  for x, y in zip(inversion.stragglers(full, a.t_star), inversion.stragglers(stopped, b.t_star)):
    np.testing.assert_array_equal(x, y)


def test_seeds_that_never_invert_run_to_the_end(noisy_data):
  cfg = TrainConfig(
      seeds=1, epochs=40, lr=0.2, chunk_epochs=16, stop_after_inversion=True
  )  # 40 epochs: R- has no time to invert
  assert train.fit(cfg, noisy_data, log=None).num_epochs == 40


def test_test_every_skips_epochs_with_nan_and_changes_nothing_else(noisy_data):
  cfg = TrainConfig(seeds=2, epochs=20, lr=0.5, chunk_epochs=6, model_settings=dict(width=8))
  every = train.fit(cfg, noisy_data, log=None)
  for k in (0, 5):
    sparse = train.fit(dataclasses.replace(cfg, test_every=k), noisy_data, log=None)
    for name in History.ARRAYS[:-1] + ('mistakes_packed',):
      np.testing.assert_array_equal(getattr(sparse, name), getattr(every, name))
    evaluated = np.zeros(21, bool)
    evaluated[-1] = True  # the last epoch always
    if k:
      evaluated[::k] = True
    np.testing.assert_array_equal(sparse.test_error[:, evaluated], every.test_error[:, evaluated])
    assert np.all(np.isnan(sparse.test_error[:, ~evaluated]))
    assert np.all(sparse.diverged_epochs(100.0) == -1)  # skipped epochs are not divergence


def test_a_second_dip_withdraws_the_confirmation_until_it_moves_back_again():
  dip = [1.0, 0.8, 0.85, 0.86, 0.7, 0.7, 0.71, 0.75]  # confirmed at 2, new minimum at 4
  for sizes in ([8], [3, 5], [1] * 8):
    rule = feed(stopping.InversionStop(1, rho=0.0), records(dip), sizes)
    assert rule.confirmed_epoch[0, 0] == 7, sizes
  rule = feed(stopping.InversionStop(1, rho=0.0), records(dip[:6]), [6])
  assert rule.confirmed_epoch[0, 0] == -1 and not rule.done


def test_the_relative_criterion_waits_for_a_fraction_rho_of_the_drop():
  curve = [1.0, 0.7, 0.725, 0.75, 0.77]  # drop 0.3: rho 0.2 asks a move back past 0.06
  assert feed(stopping.InversionStop(1, rho=0.0), records(curve), [5]).confirmed_epoch[0, 0] == 2
  assert feed(stopping.InversionStop(1, rho=0.2), records(curve), [5]).confirmed_epoch[0, 0] == 4


def two_dips(seeds: int, epochs: int = 400, seed: int = 0) -> np.ndarray:
  """(seeds, epochs + 1) radii with a first dip that moves back by more than delta and rho
  times its drop, then (in most seeds) a second, deeper dip, plus wiggles smaller than delta."""
  rng = np.random.default_rng(seed)
  t = np.arange(epochs + 1)[None]
  first = rng.integers(20, 60, (seeds, 1))
  second = rng.integers(120, 380, (seeds, 1))
  depth = rng.uniform(0.0, 0.1, (seeds, 1)) * (rng.random((seeds, 1)) < 0.8)
  curve = 1.0 - 0.1 * np.exp(-(((t - first) / 15.0) ** 2))
  curve -= (0.1 + depth) * np.exp(-(((t - second) / 40.0) ** 2)) * (depth > 0)
  return curve + rng.uniform(-0.002, 0.002, curve.shape)


def stop_epoch(curves: np.ndarray, chunk: int, rho: float) -> int:
  """The epoch at which `fit` would stop these seeds: the first chunk boundary after which the
  rule is done (the records of epochs 0 .. stop - 1 have been seen), else the end."""
  rule = stopping.InversionStop(len(curves), rho=rho, observables=('R_plus',))
  for start in range(0, curves.shape[1], chunk):
    if rule.update(types.SimpleNamespace(R_plus=curves[:, start : start + chunk])):
      return min(start + chunk, curves.shape[1])
  return curves.shape[1]


def test_a_stopped_run_reads_the_full_runs_first_confirmed_t_star_whatever_seeds_beside_it():
  curves = two_dips(12)
  full = {
      rho: inversion.first_confirmed(curves, 'R_plus', rho=r)[0]
      for rho, r in (('absolute', None), ('relative', 0.2))
  }
  differs = 0
  for seeds in ([0], [0, 1, 2, 3], list(range(12)), [5, 11], [3, 7, 9]):
    for chunk in (1, 16, 64):
      stop = stop_epoch(curves[seeds], chunk, rho=0.2)
      seen = curves[seeds, :stop]  # what a stopped run records
      for name, r in (('absolute', None), ('relative', 0.2)):
        t_star, confirmed = inversion.first_confirmed(seen, 'R_plus', rho=r)
        assert np.all(confirmed > 0)
        np.testing.assert_array_equal(t_star, full[name][seeds], err_msg=f'{seeds} {chunk}')
      # the global argmin is what an early stop cannot promise: the second dip comes later
      differs += np.sum(np.argmin(seen, axis=1) != np.argmin(curves[seeds], axis=1))
  assert differs > 0


def transient_curves(seeds: int, epochs: int = 300):
  """Curves of a conv net's shape, seed by seed different: a one-epoch dip, a rise (the
  transient), a fall to a first minimum, a move back, then a deeper second dip; and a training
  error that begins to fall a few epochs in."""
  rng = np.random.default_rng(1)
  t = np.arange(epochs, dtype=np.float64)
  out = []
  for _ in range(seeds):
    a, b = rng.uniform(20, 40), rng.uniform(120, 200)
    bump = 0.2 * np.exp(-(((t - rng.uniform(5, 10)) / 4) ** 2))
    out.append(
        0.6 + bump - 0.3 * np.exp(-(((t - a) / 8) ** 2)) - 0.4 * np.exp(-(((t - b) / 15) ** 2))
    )
  curves = np.array(out)
  curves[:, 1] -= 0.05  # the first large step lands
  error = np.concatenate([[0.5, 0.5], np.geomspace(0.4, 0.01, epochs - 2)])[None]
  return curves, error.repeat(seeds, 0)


def test_a_stopped_run_reads_the_full_runs_after_transient_t_star_whatever_seeds_beside_it():
  curves, error = transient_curves(10)
  full = {r: readings.after_transient(curves, error, rho=r).t_star for r in (None, 0.2)}
  assert np.all(full[None] >= 15)  # not the epoch-1 dip, nor the transient's peak
  for seeds in ([0], [0, 1, 2, 3], list(range(10)), [4, 9]):
    for chunk in (1, 16, 64):
      rule = stopping.make('after_transient', len(seeds), ('R_plus',), 0.2)
      assert isinstance(rule, stopping.TransientStop)
      stop = curves.shape[1]
      for start in range(0, curves.shape[1], chunk):
        piece = slice(start, start + chunk)
        chunk_records = types.SimpleNamespace(
            R_plus=curves[seeds, piece], train_error=error[seeds, piece]
        )
        if rule.update(chunk_records):
          stop = min(start + chunk, curves.shape[1])
          break
      assert stop < 100  # long before the second dip
      for r in (None, 0.2):
        seen = readings.after_transient(curves[seeds, :stop], error[seeds, :stop], rho=r)
        assert np.all(seen.confirmed > 0)
        np.testing.assert_array_equal(seen.t_star, full[r][seeds], err_msg=f'{seeds} {chunk}')
  assert stopping.make('first', 2, ('R_plus',), 0.2).__class__ is stopping.InversionStop


def test_fit_stops_under_the_after_transient_reading_and_reads_it_exactly(noisy_data):
  cfg = TrainConfig(seeds=1, epochs=300, lr=0.2, chunk_epochs=16, t_star_rule='after_transient')
  full = train.fit(cfg, noisy_data, log=None)
  stopped = train.fit(dataclasses.replace(cfg, stop_after_inversion=True), noisy_data, log=None)
  assert stopped.num_epochs < cfg.epochs
  a = inversion.analyse(full, rule='after_transient')
  b = inversion.analyse(stopped, rule='after_transient')
  for name in history_lib.OBSERVABLES:
    assert np.all(b.curves[name].inverted)
    np.testing.assert_array_equal(a.curves[name].t_star, b.curves[name].t_star)
  # on the MLP there is no transient: the reading is the first confirmed one
  first = inversion.analyse(full, rule='first')
  for name in history_lib.OBSERVABLES:
    np.testing.assert_array_equal(a.curves[name].t_star, first.curves[name].t_star)
