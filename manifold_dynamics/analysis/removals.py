"""Which examples to remove before retraining from scratch (Fig. 2a-c, pruning by score): the
plans are data, one row per retrained run, each a set of indices into T.

  around_t_star   for every base seed of a finished run: S(t*), S(t) before and after t*,
                  S(t(eps)), and random sets of the same sizes (studies/pruning.py);
  by_score        each score's top-k and bottom-k, and a random set, k = |S(t*)| of the seed
                  (studies/scores.py).
"""

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.analysis import stragglers as stragglers_lib
from manifold_dynamics.analysis.scores import hardness, top_k_sets


@dataclasses.dataclass
class Removals:
  """The retraining plan: one row per retrained run."""

  kind: List[str]  # removal kind of each run ('stragglers', 'random', 'eps=0.05', ...)
  base_seed: np.ndarray  # (runs,) the base seed whose sets define the removal
  removed: List[np.ndarray]  # indices into T removed for each run

  def weights(self, num_examples: int) -> np.ndarray:
    """(runs, P) 0/1 weights: 0 on the removed examples."""
    w = np.ones((len(self.kind), num_examples), np.float32)
    for r, idx in enumerate(self.removed):
      w[r, idx] = 0.0
    return w

  def kinds(self) -> List[str]:
    return list(dict.fromkeys(self.kind))

  def rows(self, kind: str) -> np.ndarray:
    return np.array([r for r, k in enumerate(self.kind) if k == kind], np.int64)


def eps_kind(eps: float) -> str:
  return f'eps={eps:g}'


def around_t_star(
    history,
    eps_grid: Sequence[float] = (),
    t_before: Optional[float] = 0.5,
    t_after: Optional[float] = 3.0,
    seed: int = 0,
    rule: str = 'global',
    observable: Optional[str] = None,
) -> Removals:
  """Removal sets of every base seed of `history` (see module docstring), t* read by `rule`
  (the base run's --t_star_rule) on `observable` (default: the first headline curve, R+ or
  R_mean)."""
  rng = np.random.default_rng(seed)
  P, S = history.num_examples, history.num_seeds
  inv = inversion_lib.analyse(history, rule=rule)
  t_star = inv.t_star if observable is None else inv.curves[observable].t_star
  last = history.num_epochs
  sets: Dict[str, List[np.ndarray]] = {'stragglers': stragglers_lib.at_epochs(history, t_star)}
  for kind, factor in (('before_t_star', t_before), ('after_t_star', t_after)):
    if factor is not None:  # None: leave that kind out
      epochs = np.clip(np.round(factor * t_star).astype(int), 0, last)
      sets[kind] = stragglers_lib.at_epochs(history, epochs)
  random_of = lambda ref: [np.sort(rng.choice(P, len(r), replace=False)) for r in ref]
  sets['random'] = random_of(sets['stragglers'])
  for eps in eps_grid:
    sets[eps_kind(eps)] = stragglers_lib.at_train_error(history, eps)
    sets['random_' + eps_kind(eps)] = random_of(sets[eps_kind(eps)])
  kind, base, removed = [], [], []
  for name, per_seed in sets.items():
    kind += [name] * S
    base += list(range(S))
    removed += per_seed
  return Removals(kind, np.array(base), removed)


def by_score(
    columns: Dict[str, np.ndarray],
    names: Sequence[str],
    ks: Sequence[int],
    max_base_seeds: int,
    seed: int,
) -> Removals:
  """For each of the first `max_base_seeds` seeds: each score's top-k ('top:NAME') and
  bottom-k ('bottom:NAME'), and a random set ('random'), k = |S(t*)| of that seed."""
  seeds = min(max_base_seeds, len(ks))
  ks = list(ks[:seeds])
  kind, base, removed = [], [], []
  for name in names:
    hard = hardness(columns, name)[:seeds]
    for end in ('top', 'bottom'):
      kind += [f'{end}:{name}'] * seeds
      base += list(range(seeds))
      removed += top_k_sets(hard, ks, seed, bottom=end == 'bottom')
  rng = np.random.default_rng(seed)
  num_examples = np.shape(next(iter(columns.values())))[1]  # every column is (seeds, P)
  kind += ['random'] * seeds
  base += list(range(seeds))
  removed += [np.sort(rng.choice(num_examples, k, replace=False)) for k in ks]
  return Removals(kind, np.array(base), removed)
