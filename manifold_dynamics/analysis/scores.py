"""Statistics of per-example difficulty scores against the stragglers (NumPy, SciPy).

Every score is a column of (seeds, P) values (records/scores.py names them and says which end
is hard); with k = |S(t*)| of each seed, a score's top-k is compared with S(t*) and with
itself across seeds (see studies/scores.py for the study that records and prunes by them).
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import stats

from manifold_dynamics.analysis import stragglers as stragglers_lib
from manifold_dynamics.records import scores as score_columns

# Columns compared (in this order when present); ever_learned, nearly constant, is exported only.
COMPARED = (
    'straggler',
    'forgetting_events',
    'learned_epoch',
    'el2n_tstar',
    'grand_tstar',
    'confidence',
    'variability',
    'correctness',
    'aum',
    'input_norm',
)


def compared_columns(columns: Dict[str, np.ndarray]) -> List[str]:
  """The columns to compare: COMPARED order, the captured el2n/grand epochs after t*'s."""
  fixed = [c for c in COMPARED if c in columns]
  early = sorted(
      (
          c
          for c in columns
          if score_columns.column_kind(c) in score_columns.CAPTURED and c not in fixed
      ),
      key=lambda c: (score_columns.column_kind(c), int(c.rsplit('_t', 1)[1])),
  )
  return fixed + early


def hardness(columns: Dict[str, np.ndarray], name: str) -> np.ndarray:
  """(seeds, P) values of column `name`, oriented so that larger = harder."""
  return score_columns.HARDER[score_columns.column_kind(name)] * np.asarray(
      columns[name], np.float64
  )


def top_k(hard_P: np.ndarray, k: int, rng: np.random.Generator, bottom: bool = False):
  """Sorted indices of the k largest values of `hard_P` (smallest with `bottom`), ties broken
  at random by `rng`."""
  key = -hard_P if not bottom else hard_P
  order = np.lexsort((rng.random(len(hard_P)), key))
  return np.sort(order[:k])


def top_k_sets(hard_SxP: np.ndarray, ks: Sequence[int], seed: int = 0, bottom: bool = False):
  """Per seed s, the top-ks[s] examples of row s (a fixed tie-breaking draw per seed)."""
  return [
      top_k(h, k, np.random.default_rng([seed, s]), bottom)
      for s, (h, k) in enumerate(zip(hard_SxP, ks))
  ]


def spearman(columns: Dict[str, np.ndarray], names: Sequence[str]) -> dict:
  """name -> name -> {'mean', 'std'} over seeds of the Spearman correlation (average ranks for
  ties; a column constant on a seed gives no value for it, and None if on every seed)."""
  seeds = len(next(iter(columns.values())))
  per_seed = np.empty((seeds, len(names), len(names)))
  for s in range(seeds):
    # scipy's spearmanr is these ranks' correlation matrix, but a column constant on a seed
    # turns its whole matrix into one NaN; corrcoef leaves the other pairs.
    ranks = np.stack([stats.rankdata(columns[n][s]) for n in names])
    with np.errstate(invalid='ignore', divide='ignore'):
      per_seed[s] = np.corrcoef(ranks)
  out = {}
  for i, a in enumerate(names):
    out[a] = {}
    for j, b in enumerate(names):
      values = per_seed[:, i, j]
      values = values[np.isfinite(values)]
      out[a][b] = (
          {'mean': float(values.mean()), 'std': float(values.std())} if len(values) else None
      )
  return out


def jaccard(sets_0, sets_1) -> np.ndarray:
  """(pairs,) |A ∩ B| / |A ∪ B| (1 for two empty sets)."""
  out = []
  for a, b in zip(sets_0, sets_1):
    union = len(np.union1d(a, b))
    out.append(len(np.intersect1d(a, b)) / union if union else 1.0)
  return np.array(out)


def compare_with(sets, reference, num_examples: int) -> dict:
  """Overlap statistics of paired sets (per seed) with the reference sets: stragglers.overlap
  summary plus the mean Jaccard index."""
  ov = stragglers_lib.overlap(sets, reference, num_examples)
  return {**ov.summary(), 'jaccard': float(jaccard(sets, reference).mean())}


def stability(sets, num_examples: int) -> dict:
  """Seed-to-seed overlap of one score's sets (disjoint seed pairs), as for S(t*)."""
  return stragglers_lib.within_run_overlap(sets, num_examples).summary()


def last_to_leave(learned_epoch_SxP: np.ndarray, stragglers: Sequence[np.ndarray], t_star):
  """Are the stragglers the examples that leave the misclassified set last? Per seed, the
  examples learned for good after t* (learned_epoch > t*) contain S(t*) by definition; how
  many more are there, and do the k latest-learned examples (k = |S(t*)|) equal S(t*)?"""
  later = [np.flatnonzero(le > t) for le, t in zip(learned_epoch_SxP, t_star)]
  n_s = np.array([len(s) for s in stragglers])
  n_later = np.array([len(x) for x in later])
  strag_learned = [le[s] for le, s in zip(learned_epoch_SxP, stragglers)]
  others = [np.delete(le, s) for le, s in zip(learned_epoch_SxP, stragglers)]
  return {
      'learned_after_t_star': float(n_later.mean()),
      'stragglers': float(n_s.mean()),
      # fraction of the examples learned for good after t* that are stragglers
      'straggler_fraction_of_later': float(np.mean(n_s / np.maximum(n_later, 1))),
      'median_learned_epoch_stragglers': _median(strag_learned),
      'median_learned_epoch_others': _median(others),
  }


def _median(arrays) -> Optional[float]:
  values = np.concatenate(arrays)
  return float(np.median(values)) if len(values) else None


def label_noise_hits(sets, flipped: np.ndarray, sets_of_flipped_size=None) -> dict:
  """Precision (|set ∩ flipped| / |set|) and recall (/ |flipped|), mean over seeds; with
  `sets_of_flipped_size` (each score's top-|flipped| sets) also their precision, which is
  their recall too (the usual figure of merit of label-noise detection)."""
  hits = np.array([len(np.intersect1d(s, flipped)) for s in sets])
  sizes = np.array([len(s) for s in sets])
  out = {
      'precision': float(np.mean(hits / np.maximum(sizes, 1))),
      'recall': float(np.mean(hits / max(len(flipped), 1))),
      'found': float(hits.mean()),
  }
  if sets_of_flipped_size is not None:
    found = [len(np.intersect1d(s, flipped)) for s in sets_of_flipped_size]
    out['precision_at_flipped'] = float(np.mean(found) / max(len(flipped), 1))
  return out


def straggler_columns(sets: Sequence[np.ndarray], num_examples: int) -> np.ndarray:
  """(seeds, P) 0/1 membership of S(t*)."""
  out = np.zeros((len(sets), num_examples), np.int32)
  for s, idx in enumerate(sets):
    out[s, idx] = 1
  return out
