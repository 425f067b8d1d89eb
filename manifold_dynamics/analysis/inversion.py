"""Inversion epochs, the straggler fraction phi and the stragglers themselves (SPEC §5).

Everything here is host-side NumPy on a finished `History` (arrays shaped (seeds, epochs+1)):

- t*(R+) = argmin_t R+(t), t*(R-) = argmin_t R-(t), t*(D) = argmax_t D(t), per seed;
- phi = mean of the training errors at those three epochs;
- a curve shows an inversion when its extremum is interior (0 < t* < T_end) and the curve then
  moves back by more than `delta` (a rise for R+/R-, a fall for D), so the wiggles of a flat
  curve (random labels) do not count; the margin itself is reported as `rise`;
- stragglers S(t*) = training examples misclassified at t*(R+) (or another observable's t*);
- t(eps) = first epoch whose training error is <= eps; observables "as functions of the training
  error" are read at t(eps), which is well defined even where the training error is not
  monotone (it takes the first time the error reaches eps, the definition SPEC §5 uses for
  S(t(eps))).
"""

import dataclasses
from typing import Dict, List, Optional

import numpy as np

from manifold_dynamics.records import readings
from manifold_dynamics.records.history import DEFAULT_DELTA, DEFAULT_RHO, RULES, SIGN
from manifold_dynamics.records.readings import first_confirmed, tolerance  # noqa: F401


@dataclasses.dataclass
class CurveInversion:
  """Per-seed inversion of one observable."""

  t_star: np.ndarray  # (seeds,) int, epoch of the extremum
  value: np.ndarray  # (seeds,) observable at t*
  rise: np.ndarray  # (seeds,) how far the curve moves back after t* (>= 0)
  inverted: np.ndarray  # (seeds,) bool, interior extremum and a rise past the tolerance
  drop: np.ndarray  # (seeds,) how far the curve moved from epoch 0 to t* (signed: > 0 = toward)


def curve_inversion(
    curve_SxT: np.ndarray,
    kind: str = 'R_plus',
    delta: float = DEFAULT_DELTA,
    rule: str = 'global',
    rho: Optional[float] = None,
    train_error_SxT: Optional[np.ndarray] = None,
) -> CurveInversion:
  """Inversion of curves (seeds, epochs+1) of observable `kind` (R_plus, R_minus or D).

  `rule`: t* is the global extremum ('global', SPEC §5), the first confirmed one ('first',
  SPEC §8) or the first one after an initial transient ('after_transient', SPEC §8, which
  needs the training errors `train_error_SxT` for the onset of learning); the rise must exceed
  delta (`rho` None) or rho times the drop (`tolerance`; for 'after_transient', rho times the
  fall from the transient's peak)."""
  if rule not in RULES:
    raise ValueError(f'unknown t* rule {rule!r}; one of {RULES}')
  signed = SIGN[kind] * np.asarray(curve_SxT, np.float64)
  seeds = np.arange(len(signed))
  if rule == 'global':
    t_star = np.argmin(signed, axis=1)
  elif rule == 'first':
    t_star, confirmed = first_confirmed(curve_SxT, kind, delta, rho)
  else:
    if train_error_SxT is None:
      raise ValueError("the 'after_transient' reading needs the training errors")
    reading = readings.after_transient(curve_SxT, train_error_SxT, kind, delta, rho)
    t_star, confirmed = reading.t_star, reading.confirmed
  minimum = signed[seeds, t_star]
  after = np.where(np.arange(signed.shape[1])[None] >= t_star[:, None], signed, -np.inf)
  rise = after.max(axis=1) - minimum
  drop = signed[:, 0] - minimum
  last = signed.shape[1] - 1
  inverted = (t_star > 0) & (t_star < last) & (rise > tolerance(drop, delta, rho))
  if rule != 'global':
    inverted = confirmed > 0
  return CurveInversion(t_star, SIGN[kind] * minimum, rise, inverted, drop)


@dataclasses.dataclass
class Inversion:
  """Inversion analysis of a run: one `CurveInversion` per observable, and phi."""

  curves: Dict[str, CurveInversion]
  phi: np.ndarray  # (seeds,) mean training error at t*(R+), t*(R-), t*(D)

  @property
  def t_star(self) -> np.ndarray:
    """(seeds,) t*(R+) (t*(R_mean) for K > 2), the epoch that defines the stragglers."""
    return next(iter(self.curves.values())).t_star


def analyse(
    history, delta: float = DEFAULT_DELTA, rule: str = 'global', rho: Optional[float] = None
) -> Inversion:
  """t*, rise and inversion flag of R+, R-, D (R_mean, D_mean for K > 2) per seed, and phi
  (SPEC §5, §8), with t* by `rule` and the tolerance by `rho` (see `curve_inversion`)."""
  curves = {
      k: curve_inversion(getattr(history, k), k, delta, rule, rho, history.train_error)
      for k in history.observables
  }
  seeds = np.arange(history.num_seeds)
  errors = [history.train_error[seeds, c.t_star] for c in curves.values()]
  return Inversion(curves, np.mean(errors, axis=0))


def criteria(
    history, delta: float = DEFAULT_DELTA, rho: float = DEFAULT_RHO, reference: Inversion = None
) -> dict:
  """The inversion read every way SPEC §8 asks, for the summary: t* as the global or the
  first confirmed extremum, a rise past delta (absolute) or past rho times the drop
  (relative). Per way: t* per seed and its mean, the fraction of seeds that invert, phi, and
  the fraction of seeds whose t* differs from `reference`'s (the headline's)."""
  out = {'delta': delta, 'rho': rho}
  for rule in RULES:
    for name, r in (('absolute', None), ('relative', rho)):
      inv = analyse(history, delta, rule, r)
      entry = {
          't_star': {k: c.t_star.tolist() for k, c in inv.curves.items()},
          't_star_mean': {k: float(c.t_star.mean()) for k, c in inv.curves.items()},
          'inversion_fraction': {k: float(c.inverted.mean()) for k, c in inv.curves.items()},
          'phi_mean': float(inv.phi.mean()),
          'phi_std': float(inv.phi.std()),
      }
      if reference is not None:
        entry['t_star_differs'] = {
            k: float(np.mean(c.t_star != reference.curves[k].t_star)) for k, c in inv.curves.items()
        }
      out[f'{rule}_{name}'] = entry
  return out


def stragglers(history, epochs: np.ndarray) -> List[np.ndarray]:
  """S(t) per seed: indices (into the training slice) misclassified at epochs[s] for seed s."""
  epochs = np.broadcast_to(np.asarray(epochs), (history.num_seeds,))
  packed = history.mistakes_packed[np.arange(history.num_seeds), epochs]
  masks = np.unpackbits(packed, axis=-1, count=history.num_examples).astype(bool)
  return [np.flatnonzero(m) for m in masks]


def first_epoch_below(train_error_SxT: np.ndarray, eps) -> np.ndarray:
  """t(eps): (seeds, len(eps)) first epoch with training error <= eps, or -1 if never."""
  eps = np.atleast_1d(np.asarray(eps, np.float64))
  reached = np.asarray(train_error_SxT)[:, :, None] <= eps[None, None, :] + 1e-12
  first = np.argmax(reached, axis=1)
  return np.where(reached.any(axis=1), first, -1)


def at_train_error(history, eps) -> Dict[str, np.ndarray]:
  """Observables at t(eps): each (seeds, len(eps)), NaN where a seed never reaches eps."""
  t_eps = first_epoch_below(history.train_error, eps)
  seeds = np.arange(history.num_seeds)[:, None]
  out = {}
  for name in history.observables + ('train_error', 'test_error', 'loss'):
    values = getattr(history, name)[seeds, np.maximum(t_eps, 0)].astype(np.float64)
    out[name] = np.where(t_eps >= 0, values, np.nan)
  out['epoch'] = t_eps
  return out


def train_error_grid(history, num: int = 60) -> np.ndarray:
  """Log-spaced training errors from the worst initial error down to the best one reached."""
  start = float(np.max(history.train_error[:, 0]))
  stop = float(np.min(history.train_error))
  stop = max(stop, 0.5 / history.num_examples)  # one example misclassified, at most
  return np.geomspace(start, stop, num)


def summary(history, inv: Inversion) -> dict:
  """JSON-friendly headline numbers of a run (per-seed lists and their mean/std)."""
  sizes = [len(s) for s in stragglers(history, inv.t_star)]

  def stats(x):
    x = np.asarray(x, np.float64)
    return {
        'mean': float(x.mean()),
        'std': float(x.std()),
        'min': float(x.min()),
        'max': float(x.max()),
    }

  return {
      'seeds': history.num_seeds,
      'epochs': history.num_epochs,
      'train_size': history.num_examples,
      't_star': {k: c.t_star.tolist() for k, c in inv.curves.items()},
      't_star_stats': {k: stats(c.t_star) for k, c in inv.curves.items()},
      'inversion': {k: c.inverted.tolist() for k, c in inv.curves.items()},
      'inversion_fraction': {k: float(c.inverted.mean()) for k, c in inv.curves.items()},
      'rise': {k: c.rise.tolist() for k, c in inv.curves.items()},
      'value_at_t_star': {k: c.value.tolist() for k, c in inv.curves.items()},
      'phi': inv.phi.tolist(),
      'phi_mean': float(inv.phi.mean()),
      'phi_std': float(inv.phi.std()),
      'n_stragglers': sizes,
      'n_stragglers_mean': float(np.mean(sizes)),
      'n_stragglers_std': float(np.std(sizes)),
      'final': {
          k: stats(getattr(history, k)[:, -1])
          for k in history.observables + ('loss', 'train_error', 'test_error')
      },
      'initial': {k: stats(getattr(history, k)[:, 0]) for k in history.observables},
      'transient': {
          k: transient_summary(getattr(history, k), history.train_error, k)
          for k in history.observables
      },
      **({'per_class': class_summary(history)} if history.R_class is not None else {}),
  }


def class_summary(history, delta: float = DEFAULT_DELTA) -> dict:
  """K > 2 classes: for each R_k, and each D_kl (pairs k < l), t* per seed averaged, the
  fraction of seeds that invert, and phi_k = the training error at t*(R_k) (SPEC §8)."""
  seeds = np.arange(history.num_seeds)
  out = {}
  for name in ('R_class', 'D_class'):
    curves = getattr(history, name)  # (seeds, epochs + 1, K or pairs)
    per = [curve_inversion(curves[..., k], name, delta) for k in range(curves.shape[-1])]
    out[name] = {
        't_star_mean': [float(c.t_star.mean()) for c in per],
        'inversion_fraction': [float(c.inverted.mean()) for c in per],
        'rise_mean': [float(c.rise.mean()) for c in per],
    }
    if name == 'R_class':
      phi = np.array([history.train_error[seeds, c.t_star] for c in per])  # (K, seeds)
      out[name]['phi_mean'] = phi.mean(axis=1).tolist()
      out['phi_class_spread'] = float(np.std(phi.mean(axis=1)))
  if history.test_error_class is not None:
    # each class's test error at the last epoch tested, mean over seeds, beside its phi_k
    # (a class absent from the test set stays NaN and out of the correlation)
    tested = np.flatnonzero(np.any(np.isfinite(history.test_error_class), axis=(0, 2)))
    if len(tested):
      final = history.test_error_class[:, tested[-1]].mean(axis=0)  # (K,)
      phi_k = np.asarray(out['R_class']['phi_mean'])
      ok = np.isfinite(final)
      out['test_error_class'] = final.tolist()
      out['phi_class_vs_test_error_pearson'] = (
          float(np.corrcoef(phi_k[ok], final[ok])[0, 1])
          if ok.sum() > 2 and np.std(phi_k[ok]) and np.std(final[ok])
          else None
      )
  return out


def class_stragglers(sets, labels: np.ndarray, per_class: dict) -> dict:
  """K > 2 classes: the fraction of each class's training examples in S(t*) (mean over
  seeds), and its Pearson correlation with the per-class test error of `per_class` (from
  `class_summary`), the quantity whose correlation with per-class accuracy a published
  follow-up reports (0.95 on MNIST)."""
  labels = np.asarray(labels)
  K = int(labels.max()) + 1
  members = [np.flatnonzero(labels == k) for k in range(K)]
  fraction = np.array([[np.isin(m, s).mean() for m in members] for s in sets]).mean(axis=0)
  out = {'straggler_fraction': fraction.tolist()}
  test = np.asarray(per_class.get('test_error_class', [np.nan] * K), np.float64)
  ok = np.isfinite(test)
  out['straggler_fraction_vs_test_error_pearson'] = (
      float(np.corrcoef(fraction[ok], test[ok])[0, 1])
      if ok.sum() > 2 and np.std(fraction[ok]) and np.std(test[ok])
      else None
  )
  return out


def layer_summary(history, delta: float = DEFAULT_DELTA, rule: str = 'global') -> dict:
  """Per measured layer (first one first), for R+, R- and D: mean t*, the fraction of seeds
  that invert and the mean move back, read by `rule` (the run's --t_star_rule, recorded as
  'rule'), and the curve's initial transient (`transient_summary`, one entry per layer); {}
  without per-layer observables (cfg.layers == 'first')."""
  if all(getattr(history, f'layer_{k}') is None for k in history.observables):
    return {}
  out = {}
  for name in history.observables:
    curves = getattr(history, f'layer_{name}')  # (seeds, epochs + 1, L - 1)
    per_layer = [
        curve_inversion(curves[..., k], name, delta, rule, None, history.train_error)
        for k in range(curves.shape[-1])
    ]
    out[name] = {
        'rule': rule,
        't_star_mean': [float(c.t_star.mean()) for c in per_layer],
        'inversion_fraction': [float(c.inverted.mean()) for c in per_layer],
        'rise_mean': [float(c.rise.mean()) for c in per_layer],
        'transient': [
            transient_summary(curves[..., k], history.train_error, name, delta, per_seed=False)
            for k in range(curves.shape[-1])
        ],
    }
  return out


def transient_summary(
    curve_SxT, train_error_SxT, kind: str, delta: float = DEFAULT_DELTA, per_seed: bool = True
) -> dict:
  """A curve's initial transient (SPEC §8, `readings.after_transient`): the onset of learning
  t0, the epoch of the peak (trough, for D) where segregation began and its height above the
  value at t0, per seed (-1 and 0 where there is none), and over seeds the fraction that have
  one and its mean epoch and height among them (None where no seed has one)."""
  reading = readings.after_transient(curve_SxT, train_error_SxT, kind, delta)
  has = reading.transient
  out = {
      'fraction': float(np.mean(has)),
      'epoch_mean': float(np.mean(reading.peak[has])) if has.any() else None,
      'height_mean': float(np.mean(reading.height[has])) if has.any() else None,
      'onset_mean': float(np.mean(reading.onset)),
  }
  if per_seed:
    out['epoch'] = np.where(has, reading.peak, -1).tolist()
    out['height'] = np.where(has, reading.height, 0.0).tolist()
    out['onset'] = reading.onset.tolist()
  return out
