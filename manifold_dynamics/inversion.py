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
from typing import Dict, List

import numpy as np

DEFAULT_DELTA = 0.01  # tolerance of the inversion test, in radius units
OBSERVABLES = ('R_plus', 'R_minus', 'D')  # a binary task's headline curves
MULTICLASS_OBSERVABLES = ('R_mean', 'D_mean')  # K > 2 classes (SPEC §8)
# Extremum at the inversion: radii go through a minimum, centroid distances through a maximum.
SIGN = {
    'R_plus': 1.0,
    'R_minus': 1.0,
    'D': -1.0,
    'R_mean': 1.0,
    'D_mean': -1.0,
    'R_class': 1.0,
    'D_class': -1.0,
}


def observables(binary: bool = True):
  """The headline curves of a run: R+, R-, D for a binary task, R_mean, D_mean for K > 2.
  phi is the mean training error at their t*; the stragglers are read at the first one's."""
  return OBSERVABLES if binary else MULTICLASS_OBSERVABLES


@dataclasses.dataclass
class CurveInversion:
  """Per-seed inversion of one observable."""

  t_star: np.ndarray  # (seeds,) int, epoch of the extremum
  value: np.ndarray  # (seeds,) observable at t*
  rise: np.ndarray  # (seeds,) how far the curve moves back after t* (>= 0)
  inverted: np.ndarray  # (seeds,) bool, interior extremum and rise > delta


def curve_inversion(
    curve_SxT: np.ndarray, kind: str = 'R_plus', delta: float = DEFAULT_DELTA
) -> CurveInversion:
  """Inversion of curves (seeds, epochs+1) of observable `kind` (R_plus, R_minus or D)."""
  signed = SIGN[kind] * np.asarray(curve_SxT, np.float64)
  t_star = np.argmin(signed, axis=1)
  seeds = np.arange(len(signed))
  minimum = signed[seeds, t_star]
  after = np.where(np.arange(signed.shape[1])[None] >= t_star[:, None], signed, -np.inf)
  rise = after.max(axis=1) - minimum
  last = signed.shape[1] - 1
  inverted = (t_star > 0) & (t_star < last) & (rise > delta)
  return CurveInversion(t_star, SIGN[kind] * minimum, rise, inverted)


@dataclasses.dataclass
class Inversion:
  """Inversion analysis of a run: one `CurveInversion` per observable, and phi."""

  curves: Dict[str, CurveInversion]
  phi: np.ndarray  # (seeds,) mean training error at t*(R+), t*(R-), t*(D)

  @property
  def t_star(self) -> np.ndarray:
    """(seeds,) t*(R+) (t*(R_mean) for K > 2), the epoch that defines the stragglers."""
    return next(iter(self.curves.values())).t_star


def analyse(history, delta: float = DEFAULT_DELTA) -> Inversion:
  """t*, rise and inversion flag of R+, R-, D (R_mean, D_mean for K > 2) per seed, and phi
  (SPEC §5, §8)."""
  curves = {k: curve_inversion(getattr(history, k), k, delta) for k in history.observables}
  seeds = np.arange(history.num_seeds)
  errors = [history.train_error[seeds, c.t_star] for c in curves.values()]
  return Inversion(curves, np.mean(errors, axis=0))


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
  return out


def layer_summary(history, delta: float = DEFAULT_DELTA) -> dict:
  """Per hidden layer (first one first), for R+, R- and D: mean t*, the fraction of seeds that
  invert and the mean move back; {} without per-layer observables (cfg.layers == 'first')."""
  if all(getattr(history, f'layer_{k}') is None for k in history.observables):
    return {}
  out = {}
  for name in history.observables:
    curves = getattr(history, f'layer_{name}')  # (seeds, epochs + 1, L - 1)
    per_layer = [curve_inversion(curves[..., k], name, delta) for k in range(curves.shape[-1])]
    out[name] = {
        't_star_mean': [float(c.t_star.mean()) for c in per_layer],
        'inversion_fraction': [float(c.inverted.mean()) for c in per_layer],
        'rise_mean': [float(c.rise.mean()) for c in per_layer],
    }
  return out
