"""Per-example difficulty scores accumulated inside the training scan (issue 12).

Every seed sees every training example at every epoch (full batch), so the scores that other
work computes from its own training runs come almost for free from ours. Each score is one
entry of `SCORES`: the O(P) arrays it carries per seed, how one epoch updates them, and the
named columns they end as (`records/scores.py` names them and says which end is "hard"):

  forgetting    forgetting events (Toneva et al. 2019): the number of epochs t at which the
                example goes from correct at t to misclassified at t + 1; and the last epoch at
                which it entered the correct set (learned for good if still correct at T - 1);
  cartography   mean and standard deviation over epochs of the probability of the true label
                (confidence, variability) and the fraction of epochs it is correct
                (Swayamdipta et al. 2020);
  aum           mean over epochs of the margin: logit of the true label minus the largest other
                (Pleiss et al. 2020);
  el2n          ||softmax(logits) - onehot(label)||_2 (Paul et al. 2021), taken at the epochs
                cfg.score_epochs (and, by replay, at each seed's t*: `evaluate.replay_at`);
  grand         the norm of the gradient of the example's own loss with respect to all the
                parameters (Paul et al. 2021), at the same epochs: the network computes it
                (`contract.Network.grad_norms`; exact and cheap for the MLP), so it costs a
                backward pass at those epochs only.

Epoch t is the parameters before update t + 1, as for every observable. A score that is
taken at chosen epochs (`at_score_epochs`) keeps an (E, P) array, one row per score epoch.
To add a score: one `Score` entry here, and its columns' orientation in records/scores.py.
"""

import dataclasses
from typing import Callable, Dict, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from manifold_dynamics.records.scores import groups_of


class EpochView(NamedTuple):
  """What one epoch tells every score, per example (P,), from that epoch's logits."""

  epoch: jax.Array  # () the epoch, unbatched under vmap
  seen: jax.Array  # () int32, epochs accumulated before this one
  p_true: jax.Array  # probability of the true label
  margin: jax.Array  # logit of the true label minus the largest other
  correct: jax.Array  # bool
  el2n: jax.Array  # ||softmax - onehot||
  hit_E: Optional[jax.Array]  # (E,) bool: which score epoch this one is; None without any


@dataclasses.dataclass(frozen=True)
class Score:
  """One per-example score (see the module docstring)."""

  # (P, E) -> {name: initial array}: what the score carries per seed (E = score epochs).
  init: Callable[[int, int], dict]
  # (carried, EpochView, now) -> carried. `now()` is the score's value at this epoch, only for
  # scores taken at chosen epochs (it may cost a backward pass: called only there).
  update: Callable
  # (host carried with a seed axis, epochs accumulated (seeds, 1), score_epochs) -> columns
  columns: Callable
  at_score_epochs: bool = False  # taken at cfg.score_epochs, rather than every epoch


def _forgetting_update(c, e: EpochView, now):
  del now
  first = e.seen == 0
  entering = e.correct & (first | ~c['correct'])
  return {
      'forgetting': c['forgetting'] + (c['correct'] & ~e.correct & ~first),
      'entered': jnp.where(entering, e.seen, c['entered']),
      'correct': e.correct,
  }


def _forgetting_columns(c, n, score_epochs):
  del n, score_epochs
  return {
      'forgetting_events': c['forgetting'],
      'learned_epoch': np.where(c['correct'], c['entered'], c['seen'][:, None]).astype(np.int32),
      'ever_learned': (c['entered'] >= 0).astype(np.int32),
  }


def _cartography_update(c, e: EpochView, now):
  del now
  n = e.seen + 1
  delta = e.p_true - c['p_mean']
  p_mean = c['p_mean'] + delta / n
  return {
      'p_mean': p_mean,
      'p_m2': c['p_m2'] + delta * (e.p_true - p_mean),
      'correct_count': c['correct_count'] + e.correct,
  }


def _cartography_columns(c, n, score_epochs):
  del score_epochs
  return {
      'confidence': c['p_mean'],
      'variability': np.sqrt(np.maximum(c['p_m2'], 0) / n).astype(np.float32),
      'correctness': (c['correct_count'] / n).astype(np.float32),
  }


def _at_score_epochs(name: str) -> Score:
  """A score taken at the epochs cfg.score_epochs, one row each."""

  def update(c, e: EpochView, now):
    return {name: jnp.where(e.hit_E[:, None], now()[None, :], c[name])}

  def columns(c, n, score_epochs):
    del n
    return {f'{name}_t{epoch}': c[name][:, k] for k, epoch in enumerate(score_epochs)}

  init = lambda P, E: {name: jnp.zeros((E, P), jnp.float32)}
  return Score(init, update, columns, at_score_epochs=True)


# Every score, in the order of their columns in scores.npz.
SCORES: Dict[str, Score] = {
    'forgetting': Score(
        lambda P, E: {
            'correct': jnp.zeros(P, bool),
            'forgetting': jnp.zeros(P, jnp.int32),
            'entered': jnp.full(P, -1, jnp.int32),
        },
        _forgetting_update,
        _forgetting_columns,
    ),
    'cartography': Score(
        lambda P, E: {
            'p_mean': jnp.zeros(P),
            'p_m2': jnp.zeros(P),
            'correct_count': jnp.zeros(P, jnp.int32),
        },
        _cartography_update,
        _cartography_columns,
    ),
    'aum': Score(
        lambda P, E: {'margin_sum': jnp.zeros(P)},
        lambda c, e, now: {'margin_sum': c['margin_sum'] + e.margin},
        lambda c, n, score_epochs: {'aum': (c['margin_sum'] / n).astype(np.float32)},
    ),
    'el2n': _at_score_epochs('el2n'),
    'grand': _at_score_epochs('grand'),
}


def init(num_examples: int, groups: Sequence[str], num_score_epochs: int) -> dict:
  """The carried scores of one seed: {'seen': epochs accumulated, group: its arrays}."""
  carried = {g: SCORES[g].init(num_examples, num_score_epochs) for g in groups_of(groups)}
  return {'seen': jnp.int32(0), **carried}


def true_class_stats(logits_CxP: jax.Array, label_P: jax.Array):
  """(p(true label), margin, correct, EL2N), each (P,), from feature-major logits (C, P)."""
  probs = jax.nn.softmax(logits_CxP, axis=0)
  onehot = jax.nn.one_hot(label_P, logits_CxP.shape[0], axis=0, dtype=probs.dtype)
  true_logit = jnp.sum(onehot * logits_CxP, axis=0)
  other = jnp.max(jnp.where(onehot > 0, -jnp.inf, logits_CxP), axis=0)
  el2n = jnp.sqrt(jnp.sum(jnp.square(probs - onehot), axis=0))
  return jnp.sum(onehot * probs, axis=0), true_logit - other, true_logit > other, el2n


def accumulate(
    scores: dict,
    epoch: jax.Array,
    logits_CxP: jax.Array,
    label_P: jax.Array,
    score_epochs: Sequence[int],
    grand_fn: Callable[[], jax.Array],
) -> dict:
  """`scores` updated with the epoch whose logits are `logits_CxP`. The scores taken at
  `score_epochs` take their value there: EL2N from these logits, GraNd from `grand_fn()` (P,),
  a backward pass of its own, run only at those epochs (keep `epoch` unbatched under vmap so
  that the branch stays a branch)."""
  p_true, margin, correct, el2n = true_class_stats(logits_CxP, label_P)
  hit_E = epoch == jnp.asarray(score_epochs, jnp.int32) if len(score_epochs) else None
  view = EpochView(epoch, scores['seen'], p_true, margin, correct, el2n, hit_E)
  values = {
      'el2n': lambda: el2n,
      'grand': lambda: jax.lax.cond(jnp.any(hit_E), grand_fn, lambda: jnp.zeros_like(el2n)),
  }
  new = {'seen': scores['seen'] + 1}
  for group, carried in scores.items():
    if group == 'seen':
      continue
    score = SCORES[group]
    if score.at_score_epochs and hit_E is None:
      new[group] = carried  # no score epochs: nothing to take
      continue
    new[group] = score.update(carried, view, values.get(group))
  return new


def finalize(scores: dict, score_epochs: Sequence[int]) -> Dict[str, np.ndarray]:
  """Named per-example columns, each (seeds, P), from host scores with a leading seed axis.
  learned_epoch is the epoch after which the example stays correct (the number of epochs
  accumulated, T, if it is misclassified at the last one)."""
  scores = jax.tree.map(np.asarray, scores)
  seen = scores['seen']
  n = seen[:, None].astype(np.float64)
  out = {}
  for group, score in SCORES.items():
    if group in scores:
      out.update(score.columns(dict(scores[group], seen=seen), n, score_epochs))
  return out
