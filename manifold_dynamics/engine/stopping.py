"""Stop rules: host-side collaborators of `train.fit` that read each chunk's records.

A stop rule is fed the records of every chunk in order (`update`) and says when training may
end (`done`). It never touches the device computation: `fit` trains a chunk, hands its host
records to the rule, and stops between chunks.

`make` gives the stop rule of a run's reading of t* (--t_star_rule).

`InversionStop` ends training once every seed's inversion is confirmed on its headline curves
(R+, R- and D; R_mean and D_mean for K > 2): the curve (sign-flipped for D, whose extremum is a
maximum) has reached a running minimum below its initial value, and has since moved back above
it by more than both `delta + margin` and `rho` times the drop before it.

What this guarantees (SPEC §8): the *first confirmed* extremum, absolute (a move back past
delta) or relative (past rho times the drop), is decided by the epochs up to its confirmation,
and a stop comes after both are confirmed; so a stopped run reads the same first confirmed t*,
phi and S(t*) as the full run, seed by seed, whatever other seeds train beside it. The *global*
extremum (SPEC §5) cannot be guaranteed: a second, deeper dip after the stop is never seen.
The rule makes that unlikely (the margin, and a curve that returns below its confirmed minimum
before the stop, a second dip as linear nets show, loses its confirmation until it moves back
past the new minimum), and a stopped run's summary says it stopped early.
"""

from typing import Sequence

import numpy as np

from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import readings

# Confirmation needs a move back of delta + margin = 0.02 past the running extremum, twice the
# SPEC §5 tolerance. Measured on the MNIST defaults (100 seeds x 1000 epochs,
# benchmarks/early_stop.py): every curve approaches its extremum monotonically (the largest
# temporary move back before it, the wiggle a threshold could mistake for the inversion, is 0)
# and every inversion ends up rising by more than 0.1, so the stop came at epoch 104 of 1000
# with t*, phi and S(t*) equal to the full run's in every seed. The margin guards against
# wiggles up to twice the tolerance (oscillating GD at a large lr can have larger ones: then
# use a larger margin or no stop rule) at the cost of a few epochs.
DEFAULT_MARGIN = 0.01


class InversionStop:
  """Confirms, seed by seed and observable by observable, that the inversion has happened."""

  def __init__(
      self,
      num_seeds: int,
      delta: float = history_lib.DEFAULT_DELTA,
      margin: float = DEFAULT_MARGIN,
      observables: Sequence[str] = history_lib.OBSERVABLES,
      rho: float = history_lib.DEFAULT_RHO,
  ):
    self.observables = tuple(observables)
    self.threshold = delta + margin
    self.rho = rho
    shape = (num_seeds, len(self.observables))
    self.initial = None  # (seeds, K) signed value at epoch 0
    self.running_min = np.full(shape, np.inf)  # (seeds, K) signed minimum over epochs >= 1
    # epoch at which the latest extremum was confirmed, -1 = not (or no longer) confirmed
    self.confirmed_epoch = np.full(shape, -1, np.int64)
    self.epochs_seen = 0

  def update(self, records) -> bool:
    """Feeds the records (arrays (seeds, n) per observable) of the next n epochs; returns
    `done`."""
    signed = np.stack(
        [
            history_lib.SIGN[k] * np.asarray(getattr(records, k), np.float64)
            for k in self.observables
        ],
        axis=1,
    )  # (seeds, K, n)
    epochs = self.epochs_seen + np.arange(signed.shape[-1])
    if self.initial is None:
      self.initial = signed[..., 0]
      signed = np.where(epochs == 0, np.inf, signed)  # the extremum must be interior
    carried = np.concatenate([self.running_min[..., None], signed], axis=-1)
    running_all = np.minimum.accumulate(carried, axis=-1)
    running = running_all[..., 1:]
    # A new extremum after a confirmation (a second dip) supersedes it: only a move back past
    # the latest extremum counts, so t* read from the epochs trained is the latest extremum.
    dropped = running < running_all[..., :-1]  # (seeds, K, n): a new extremum at this epoch
    n = signed.shape[-1]
    last_drop = np.where(dropped.any(-1), n - 1 - np.argmax(dropped[..., ::-1], axis=-1), -1)
    with np.errstate(invalid='ignore'):  # inf - inf before the first interior epoch
      drop = self.initial[..., None] - running
      hit = (drop > 0) & (signed - running > np.maximum(self.threshold, self.rho * drop))
    hit &= np.arange(n) > last_drop[..., None]
    first = np.where(hit.any(-1), epochs[np.argmax(hit, axis=-1)], -1)
    keep = (self.confirmed_epoch >= 0) & (last_drop < 0)
    self.confirmed_epoch = np.where(keep, self.confirmed_epoch, first)
    self.running_min = running[..., -1]
    self.epochs_seen += signed.shape[-1]
    return self.done

  @property
  def done(self) -> bool:
    return bool(np.all(self.confirmed_epoch >= 0))

  @property
  def seeds_confirmed(self) -> int:
    """Seeds whose inversion is confirmed on every observable."""
    return int(np.sum(np.all(self.confirmed_epoch >= 0, axis=1)))


class TransientStop:
  """The stop rule of the after-transient reading (SPEC §8, `readings.after_transient`):
  training ends once every seed's headline curves have an extremum after the onset of learning,
  reached by a fall and confirmed by a move back, both absolute (past delta) and relative (past
  rho times the fall). Each reading is decided by the epochs up to its confirmation, so a
  stopped run reads the full run's after-transient t*, phi and S(t*) exactly, seed by seed,
  whatever trains beside it. It keeps the headline curves and the training errors of the
  epochs so far ((seeds, epochs) each: a few bytes per seed-epoch) and reads them again after
  every chunk."""

  def __init__(
      self,
      num_seeds: int,
      delta: float = history_lib.DEFAULT_DELTA,
      observables: Sequence[str] = history_lib.OBSERVABLES,
      rho: float = history_lib.DEFAULT_RHO,
  ):
    self.observables = tuple(observables)
    self.delta, self.rho = delta, rho
    self.curves = {k: np.zeros((num_seeds, 0)) for k in self.observables + ('train_error',)}
    self.confirmed_epoch = np.full((num_seeds, len(self.observables)), -1, np.int64)

  def update(self, records) -> bool:
    for k, kept in self.curves.items():
      self.curves[k] = np.concatenate([kept, np.asarray(getattr(records, k), np.float64)], 1)
    for i, k in enumerate(self.observables):
      confirmed = [
          readings.after_transient(
              self.curves[k], self.curves['train_error'], k, self.delta, rho
          ).confirmed
          for rho in (None, self.rho)
      ]
      self.confirmed_epoch[:, i] = np.where(np.min(confirmed, 0) >= 0, np.max(confirmed, 0), -1)
    return self.done

  @property
  def done(self) -> bool:
    return bool(np.all(self.confirmed_epoch >= 0))

  @property
  def seeds_confirmed(self) -> int:
    """Seeds whose inversion is confirmed on every observable."""
    return int(np.sum(np.all(self.confirmed_epoch >= 0, axis=1)))


def make(rule: str, num_seeds: int, observables: Sequence[str], rho: float):
  """The stop rule that keeps reading `rule` exact (see the module docstring)."""
  if rule == 'after_transient':
    return TransientStop(num_seeds, observables=observables, rho=rho)
  return InversionStop(num_seeds, observables=observables, rho=rho)
