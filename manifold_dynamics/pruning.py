"""Pruning and retraining (Fig. 2a-c): train again from scratch on T \\ S.

For every base seed s of a finished run the removal sets are
  stragglers     S(t*)                     the examples misclassified at t*(R+);
  before_t_star  S(t) at t = t_before * t*  (earlier: a larger set);
  after_t_star   S(t) at t = t_after * t*   (later: a smaller set);
  random         a random subset of T of the size of S(t*) (the control);
  eps=E          S(t(E)) for each E of the eps grid, and random_eps=E, its random control.
Every removal is a 0/1 weight vector over T, so all retrainings (removal kinds x base seeds,
each with a fresh initialisation) train together in one vmapped program; the standardisation
is recomputed on each pruned set inside the engine. After training, each net is tested on the
clean test set and on noisy ones (Gaussian noise of std sigma on the standardised pixels).
"""

import dataclasses
from typing import Callable, Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from manifold_dynamics import contract
from manifold_dynamics import inversion as inversion_lib
from manifold_dynamics import stragglers as stragglers_lib
from manifold_dynamics.train import RunState, TrainData

SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.2, 1.5)  # SPEC §1 noise levels


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


def plan_removals(
    history,
    eps_grid: Sequence[float] = (),
    t_before: float = 0.5,
    t_after: float = 3.0,
    seed: int = 0,
) -> Removals:
  """Removal sets of every base seed of `history` (see module docstring)."""
  rng = np.random.default_rng(seed)
  P, S = history.num_examples, history.num_seeds
  t_star = inversion_lib.analyse(history).t_star
  last = history.num_epochs
  sets: Dict[str, List[np.ndarray]] = {
      'stragglers': stragglers_lib.at_epochs(history, t_star),
      'before_t_star': stragglers_lib.at_epochs(
          history, np.clip(np.round(t_before * t_star).astype(int), 0, last)
      ),
      'after_t_star': stragglers_lib.at_epochs(
          history, np.clip(np.round(t_after * t_star).astype(int), 0, last)
      ),
  }
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


def noisy_test_errors(
    logits_of: Callable,
    states: RunState,
    data: TrainData,
    sigmas: Sequence[float],
    key: jax.Array,
) -> np.ndarray:
  """(runs, len(sigmas)) test error of each trained net with Gaussian noise of std sigma
  added to the standardised test pixels (each run standardises with its own statistics).
  `logits_of(params, x (B, N) standardised)` gives the logits (B, K) of a net
  (`train.logits_function`). One noise draw per sigma is shared by all runs, so their
  comparisons are paired."""
  noise = jax.random.normal(key, (len(sigmas),) + data.x_test.shape)
  sigmas = jnp.asarray(sigmas, jnp.float32)
  labels = contract.targets(data.y_test, data.num_classes)

  def one_run(state: RunState):
    shift, scale = state.standardiser
    x = (data.x_test - shift[None, :]) * scale[None, :]

    def one_sigma(args):
      sigma, eps = args
      logits = logits_of(state.train.params, x + sigma * eps)
      return jnp.mean((jnp.argmax(logits, axis=-1) != labels).astype(jnp.float32))

    return jax.lax.map(one_sigma, (sigmas, noise))

  return np.asarray(jax.jit(lambda s: jax.lax.map(one_run, s))(states))
