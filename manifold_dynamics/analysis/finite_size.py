"""The finite-size form of SPEC §6 fitted to phi(P):

    phi(P) = phi_inf * (1 - (P / P0) ** (-gamma)),

by weighted least squares on the per-P means (scipy), the uncertainty of phi_inf, P0 and gamma
coming from a bootstrap over seeds (the seeds of every P resampled with replacement, the fit
repeated).
"""

import dataclasses
import math
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import scipy.optimize

FIT_PARAMETERS = ('phi_inf', 'P0', 'gamma')


def phi_model(P, phi_inf: float, P0: float, gamma: float):
  """The finite-size form phi(P) = phi_inf * (1 - (P / P0)^(-gamma))."""
  return phi_inf * (1.0 - (np.asarray(P, np.float64) / P0) ** (-gamma))


@dataclasses.dataclass
class FiniteSizeFit:
  """The fit of phi(P); NaN parameters and `converged` False when it failed (see `message`)."""

  phi_inf: float
  P0: float
  gamma: float
  converged: bool
  message: str = ''
  intervals: Dict[str, List[float]] = dataclasses.field(default_factory=dict)  # 95%, bootstrap
  bootstrap_std: Dict[str, float] = dataclasses.field(default_factory=dict)
  bootstrap_converged: int = 0  # bootstrap resamples whose fit converged
  # Weighted residuals^2 per degree of freedom (per-P standard errors as weights): well above
  # 1, the form misses the data by more than seed noise, and the bootstrap intervals (seed
  # noise only) understate the uncertainty of phi_inf.
  chi2_per_dof: float = float('nan')

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def _bounds(P: np.ndarray):
  """(lower, upper) bounds of (phi_inf, log P0, gamma)."""
  return [0.0, -10.0, 1e-3], [1.0, math.log(P.min()), 20.0]


def _fit_means(
    P: np.ndarray, means: np.ndarray, sems: np.ndarray, starts=((0.3,), (1.0,), (3.0,))
) -> Optional[np.ndarray]:
  """(phi_inf, log P0, gamma) by weighted least squares from several starts, or None."""
  log_p_min = math.log(P.min())
  model = lambda p, phi_inf, log_p0, gamma: phi_model(p, phi_inf, math.e**log_p0, gamma)
  best, best_cost = None, np.inf
  for (gamma0,) in starts:
    p0 = (min(1.0, 1.2 * means.max()), log_p_min - 1.0, gamma0)
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        params, _ = scipy.optimize.curve_fit(
            model, P, means, p0=p0, sigma=sems, maxfev=5000, bounds=_bounds(P)
        )
    except (RuntimeError, ValueError):
      continue
    cost = np.sum(((model(P, *params) - means) / sems) ** 2)
    if np.all(np.isfinite(params)) and cost < best_cost:
      best, best_cost = params, cost
  return best


def fit_finite_size(
    train_sizes: Sequence[int],
    phi_per_size: Sequence[np.ndarray],
    bootstrap: int = 200,
    seed: int = 0,
) -> FiniteSizeFit:
  """Fits phi(P) to the per-seed phi of every P; intervals from `bootstrap` resamples.

  Needs at least 3 values of P (the form has 3 free parameters): with fewer, or when no start
  converges, the fit is returned with `converged` False and a message; nothing raises.
  """
  P = np.asarray(train_sizes, np.float64)
  phis = [np.asarray(p, np.float64) for p in phi_per_size]
  nan = FiniteSizeFit(np.nan, np.nan, np.nan, False)
  if len(np.unique(P)) < len(FIT_PARAMETERS):
    nan.message = (
        f'the fit has {len(FIT_PARAMETERS)} free parameters and needs at least '
        f'{len(FIT_PARAMETERS)} values of P, got {len(np.unique(P))}; skipped.'
    )
    return nan
  means = np.array([p.mean() for p in phis])
  floor = 1e-3 * max(means.max(), 1e-6)  # one seed has no spread: weight by a small floor
  sems = np.array(
      [max(p.std(ddof=1) / math.sqrt(len(p)) if len(p) > 1 else 0.0, floor) for p in phis]
  )
  params = _fit_means(P, means, sems)
  if params is None:
    nan.message = 'the fit did not converge from any start; the points are kept.'
    return nan
  rng = np.random.default_rng(seed)
  samples = []
  for _ in range(bootstrap):
    resampled = [rng.choice(p, len(p), replace=True) for p in phis]
    b = _fit_means(P, np.array([r.mean() for r in resampled]), sems, starts=((params[2],),))
    if b is not None:
      samples.append(b)
  residuals = (phi_model(P, params[0], math.exp(params[1]), params[2]) - means) / sems
  dof = len(P) - len(FIT_PARAMETERS)
  out = FiniteSizeFit(
      float(params[0]),
      float(math.exp(params[1])),
      float(params[2]),
      True,
      bootstrap_converged=len(samples),
      chi2_per_dof=float(np.sum(residuals**2) / dof) if dof else float('nan'),
  )
  lower, upper = _bounds(P)
  at_bound = [
      name
      for name, v, lo, hi in zip(FIT_PARAMETERS, params, lower, upper)
      if min(v - lo, hi - v) <= 1e-6 * max(1.0, abs(v))
  ]
  if at_bound:
    out.message = (
        f'the fit sits at a bound of {", ".join(at_bound)} (phi(P) hardly changes '
        f'over these P, so the form is not identifiable); read phi_inf with care.'
    )
  if samples:
    s = np.array(samples)
    s[:, 1] = np.exp(s[:, 1])
    for i, name in enumerate(FIT_PARAMETERS):
      out.intervals[name] = [float(v) for v in np.percentile(s[:, i], [2.5, 97.5])]
      out.bootstrap_std[name] = float(s[:, i].std())
  return out
