"""How an inversion epoch t* is read off a recorded curve (SPEC §5, §8): NumPy functions of
(seeds, epochs) arrays, shared by the stop rule, which reads them while a run trains
(engine/stopping.py), and the analysis of a finished run (analysis/inversion.py).

Every reading works on the signed curve, `SIGN[kind] * curve`, so that the extremum is always a
minimum (D is negated). A reading is "confirmed" at the epoch where the curve has moved back
from its extremum by more than the tolerance; only the epochs up to that one decide it, so a
run stopped any time after reads the same t*.

  first_confirmed   the first running minimum (over epochs >= 1) that the curve moves back from
                    (SPEC §8: 'first');
  after_transient   the first minimum after learning has begun that the curve reached by a fall
                    and then leaves (SPEC §8: 'after_transient'), with the transient before it.
"""

from typing import NamedTuple, Optional

import numpy as np

from manifold_dynamics.records.history import DEFAULT_DELTA, SIGN

# Learning has begun at t0, the first epoch whose training error is at most this fraction of
# its initial value (SPEC §8).
ONSET_FRACTION = 0.9


def tolerance(drop, delta: float = DEFAULT_DELTA, rho: Optional[float] = None):
  """The move back that confirms an extremum: delta (absolute, SPEC §5), or rho times the
  drop that preceded it (relative, SPEC §8), whichever `rho` (None: absolute) asks for."""
  return delta if rho is None else rho * np.asarray(drop, np.float64)


def first_confirmed(
    curve_SxT: np.ndarray, kind: str = 'R_plus', delta: float = DEFAULT_DELTA, rho=None
):
  """(t*, confirmed) per seed for the first confirmed extremum (SPEC §8): the running extremum
  (over epochs >= 1, beyond the initial value) that the curve first moves back from by more
  than the tolerance (`tolerance`) before passing it. `confirmed` (seeds,) is the epoch of
  that move back, -1 where none happens (t* is then the global extremum). Only the epochs up
  to `confirmed` decide it: a run stopped any time after reads the same t*."""
  signed = SIGN[kind] * np.asarray(curve_SxT, np.float64)
  seeds, epochs = signed.shape
  if epochs < 3:
    return np.argmin(signed, axis=1), np.full(seeds, -1)
  interior = signed[:, 1:]
  running = np.minimum.accumulate(interior, axis=1)  # minimum over epochs 1..t
  new = np.concatenate([np.ones((seeds, 1), bool), interior[:, 1:] < running[:, :-1]], axis=1)
  where = np.maximum.accumulate(np.where(new, np.arange(1, epochs), 0), axis=1)
  before = running[:, :-1]  # at epoch t = 2.., the extremum over 1..t-1 and its epoch
  drop = signed[:, :1] - before
  with np.errstate(invalid='ignore'):
    hit = (drop > 0) & (interior[:, 1:] - before > tolerance(drop, delta, rho))
  confirmed = np.where(hit.any(axis=1), np.argmax(hit, axis=1) + 2, -1)
  t_star = np.where(
      confirmed > 0,
      where[np.arange(seeds), np.maximum(confirmed - 2, 0)],
      np.argmin(signed, axis=1),
  )
  return t_star, confirmed


def learning_onset(train_error_SxT: np.ndarray) -> np.ndarray:
  """t0 per seed: the first epoch whose training error is at most ONSET_FRACTION times its
  initial value; -1 where learning never begins."""
  error = np.asarray(train_error_SxT, np.float64)
  begun = error <= ONSET_FRACTION * error[:, :1]
  return np.where(begun.any(axis=1), np.argmax(begun, axis=1), -1)


class Reading(NamedTuple):
  """The after-transient reading of one curve, per seed."""

  t_star: np.ndarray  # (seeds,) int, the extremum (unconfirmed: the extremum from t0 on)
  confirmed: np.ndarray  # (seeds,) int, the epoch of the move back that confirms it, or -1
  onset: np.ndarray  # (seeds,) int, t0, or -1 where learning never begins
  peak: np.ndarray  # (seeds,) int, epoch the segregating fall began from, or -1 (no fall)
  # (seeds,) how far the curve had moved the wrong way at `peak`, above its value at t0 (in
  # the curve's units: a rise for R, a fall for D); 0 where the fall began at t0 or never
  height: np.ndarray
  fall: np.ndarray  # (seeds,) from the peak down to t*, >= 0 (0 where no fall began)

  @property
  def transient(self) -> np.ndarray:
    """(seeds,) bool: the curve moved the wrong way before segregation began."""
    return (self.peak >= 0) & (self.height > 0)


def after_transient(
    curve_SxT: np.ndarray,
    train_error_SxT: np.ndarray,
    kind: str = 'R_plus',
    delta: float = DEFAULT_DELTA,
    rho: Optional[float] = None,
) -> Reading:
  """The after-transient reading (SPEC §8) of curves (seeds, epochs+1) of observable `kind`.

  From t0 (`learning_onset`) on, the curve's highest value (lowest, for D) is tracked: each
  new high restarts the search, so a turn that no fall preceded begins it again. Once the
  curve has fallen more than `delta` below the highest value, segregation has begun at that
  high (the transient's peak); t* is the lowest value from there until the curve moves back
  above it by more than the tolerance (delta, or rho times the fall with `rho`), the epoch of
  that move being the confirmation. Only the epochs up to it decide the reading."""
  signed = SIGN[kind] * np.asarray(curve_SxT, np.float64)
  seeds, epochs = signed.shape
  onset = learning_onset(train_error_SxT)
  peak = np.full(seeds, -np.inf)
  peak_t = np.full(seeds, -1)
  low = np.full(seeds, np.inf)
  low_t = np.full(seeds, -1)
  falling = np.zeros(seeds, bool)
  confirmed = np.full(seeds, -1)
  for t in range(epochs):
    x = signed[:, t]
    live = (onset >= 0) & (t >= onset) & (confirmed < 0)
    rising = live & ~falling & (x > peak)
    peak, peak_t = np.where(rising, x, peak), np.where(rising, t, peak_t)
    fell = live & ~falling & (peak - x > delta)
    falling = falling | fell
    lower = live & falling & (x < low)
    low, low_t = np.where(lower, x, low), np.where(lower, t, low_t)
    with np.errstate(invalid='ignore'):
      back = live & falling & ~lower & (x - low > tolerance(peak - low, delta, rho))
    confirmed = np.where(back, t, confirmed)
  from_onset = np.where(np.arange(epochs)[None] >= np.maximum(onset, 0)[:, None], signed, np.inf)
  t_star = np.where(falling & (confirmed >= 0), low_t, np.argmin(from_onset, axis=1))
  rows = np.arange(seeds)
  at_onset = signed[rows, np.maximum(onset, 0)]
  height = np.where(falling, signed[rows, np.maximum(peak_t, 0)] - at_onset, 0.0)
  fall = np.where(falling, signed[rows, np.maximum(peak_t, 0)] - signed[rows, t_star], 0.0)
  return Reading(t_star, confirmed, onset, np.where(falling, peak_t, -1), height, fall)
