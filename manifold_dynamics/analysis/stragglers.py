"""Straggler sets and their stability across seeds and architectures (SPEC §5-6, Fig. 2d).

Sets are exact, read from the per-epoch misclassification masks of a run:
  S(t*)      examples misclassified at the inversion epoch of R+ (or R-, or D);
  S(t)       at any epoch t;
  S(t(eps))  at the first epoch whose training error is <= eps.
Indices are into the training slice; `train_indices[S]` gives indices into the dataset's split.

Stability of two families of sets {S_0}, {S_1} (one per seed, paired): the observed overlaps
M = |S_0 ∩ S_1| against the null overlaps M_hat of two random subsets of the P examples of the
same sizes, which are hypergeometric: E[M_hat] = n_0 n_1 / P. The z-score is
z = (<M> - <M_hat>) / sigma_M, sigma_M the spread of the observed M over pairs (the paper's);
`z_null` divides by the null's spread instead.
"""

import dataclasses
from typing import List, Sequence

import numpy as np
from scipy import stats

from manifold_dynamics.analysis import inversion as inversion_lib


def at_epochs(history, epochs) -> List[np.ndarray]:
  """S(t) per seed for t = epochs[s] (or one epoch for all seeds)."""
  return inversion_lib.stragglers(history, epochs)


def at_t_star(history, observable: str = 'R_plus', delta: float = inversion_lib.DEFAULT_DELTA):
  """S(t*) per seed, t* of `observable` (R_plus, R_minus or D)."""
  inv = inversion_lib.analyse(history, delta)
  return at_epochs(history, inv.curves[observable].t_star)


def at_train_error(history, eps: float) -> List[np.ndarray]:
  """S(t(eps)) per seed; a seed that never reaches eps gives its set at the last epoch."""
  t_eps = inversion_lib.first_epoch_below(history.train_error, eps)[:, 0]
  return at_epochs(history, np.where(t_eps >= 0, t_eps, history.num_epochs))


def _ratio(gap: float, spread: float) -> float:
  if spread > 0:
    return float(gap / spread)
  return float('nan') if gap == 0 else float(np.sign(gap) * np.inf)


@dataclasses.dataclass
class Overlap:
  """Observed and null overlaps of paired straggler sets."""

  observed: np.ndarray  # (pairs,) M = |S_0 ∩ S_1|
  null_mean: np.ndarray  # (pairs,) E[M_hat] = n_0 n_1 / P
  null_var: np.ndarray  # (pairs,) Var[M_hat] (hypergeometric)
  shared_fraction: np.ndarray  # (pairs,) M / |S_0| (NaN where S_0 is empty)

  @property
  def z(self) -> float:
    """(<M> - <M_hat>) / sigma_M, sigma_M the observed spread (+-inf or NaN without one)."""
    return _ratio(self.observed.mean() - self.null_mean.mean(), self.observed.std())

  @property
  def z_null(self) -> float:
    """(<M> - <M_hat>) / sigma_M_hat, with the null's own spread (sqrt of mean variance)."""
    return _ratio(self.observed.mean() - self.null_mean.mean(), np.sqrt(self.null_var.mean()))

  def summary(self) -> dict:
    """JSON-friendly numbers; a z-score that is undefined (no spread: too few pairs) is None."""
    finite = lambda v: v if np.isfinite(v) else None
    return {
        'pairs': int(len(self.observed)),
        'overlap_mean': float(self.observed.mean()),
        'overlap_std': float(self.observed.std()),
        'null_overlap_mean': float(self.null_mean.mean()),
        'null_overlap_std': float(np.sqrt(self.null_var.mean())),
        'z': finite(self.z),
        'z_null': finite(self.z_null),
        'shared_fraction': (
            float(np.nanmean(self.shared_fraction))
            if np.isfinite(self.shared_fraction).any()
            else None
        ),
    }


def overlap(
    sets_0: Sequence[np.ndarray], sets_1: Sequence[np.ndarray], num_examples: int
) -> Overlap:
  """Overlaps of paired sets (sets_0[i], sets_1[i]) of examples among `num_examples`."""
  if len(sets_0) != len(sets_1) or not len(sets_0):
    raise ValueError(
        f'need the same, non-zero number of sets, got {len(sets_0)} and ' f'{len(sets_1)}'
    )
  n0 = np.array([len(s) for s in sets_0])
  n1 = np.array([len(s) for s in sets_1])
  observed = np.array([len(np.intersect1d(a, b)) for a, b in zip(sets_0, sets_1)])
  null = stats.hypergeom(num_examples, n0, n1)  # population, successes, draws
  with np.errstate(invalid='ignore', divide='ignore'):  # scipy's moments of empty sets
    null_mean, null_var = np.asarray(null.mean(), float), np.asarray(null.var(), float)
  shared = np.where(n0 > 0, observed / np.maximum(n0, 1), np.nan)
  return Overlap(observed, null_mean, null_var, shared)


def seed_pairs(num_seeds: int) -> np.ndarray:
  """Disjoint pairs of seeds (0, 1), (2, 3), ...: independent samples of the overlap."""
  if num_seeds < 2:
    raise ValueError('the overlap of straggler sets needs at least 2 seeds')
  first = np.arange(0, num_seeds - 1, 2)
  return np.stack([first, first + 1], axis=1)


def within_run_overlap(sets: Sequence[np.ndarray], num_examples: int) -> Overlap:
  """Overlap of the straggler sets of disjoint seed pairs of one run."""
  pairs = seed_pairs(len(sets))
  return overlap([sets[i] for i in pairs[:, 0]], [sets[j] for j in pairs[:, 1]], num_examples)


def sample_null_overlaps(
    sizes_0, sizes_1, num_examples: int, samples: int, rng: np.random.Generator
) -> np.ndarray:
  """(pairs, samples) overlaps of two random subsets of the given sizes of the P examples,
  drawn from their hypergeometric law (a check on `overlap`'s closed-form null)."""
  return np.stack(
      [rng.hypergeometric(a, num_examples - a, b, size=samples) for a, b in zip(sizes_0, sizes_1)]
  ).reshape(len(sizes_0), samples)
