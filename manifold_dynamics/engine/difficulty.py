"""Per-example difficulty scores accumulated inside the training scan (issue 12).

Every seed sees every training example at every epoch (full batch), so the scores that other
work computes from its own training runs come almost for free from ours. Each is a running
statistic over the epochs t = 0 .. T-1 that the scan trains (epoch t = the parameters before
update t + 1, as for every observable), carried as O(P) arrays per seed in `Accumulators`:

  forgetting    forgetting events (Toneva et al. 2019): the number of epochs t at which the
                example goes from correct at t to misclassified at t + 1; and the last epoch at
                which it entered the correct set (learned for good if still correct at T - 1);
  el2n          ||softmax(logits) - onehot(label)||_2 (Paul et al. 2021) at the epochs
                cfg.score_epochs (and, by replay, at each seed's t*: `scores.py`);
  grand         the norm of the gradient of the example's own loss with respect to all the
                parameters (Paul et al. 2021), at the same epochs, in the exact form of an MLP:
                sum over layers of (||input||^2 + 1) ||back-propagated error||^2;
  cartography   mean and standard deviation over epochs of the probability of the true label
                (confidence, variability) and the fraction of epochs it is correct
                (Swayamdipta et al. 2020);
  aum           mean over epochs of the margin: logit of the true label minus the largest other
                (Pleiss et al. 2020);
  input_norm    ||x|| of the standardised input, a baseline some scores track (no scan needed).

`finalize` turns the carried sums into named per-example columns (`records/scores.py` names
them and says which end of each is "hard").
"""

from typing import Callable, Dict, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from manifold_dynamics.records.scores import CAPTURED


@flax.struct.dataclass
class Accumulators:
  """Running per-example statistics of one seed (see module docstring); None = not recorded."""

  epochs: jax.Array  # () int32, epochs accumulated so far
  correct: Optional[jax.Array] = None  # (P,) bool, correct at the last epoch accumulated
  forgetting: Optional[jax.Array] = None  # (P,) int32 forgetting events
  entered: Optional[jax.Array] = None  # (P,) int32 last epoch entering the correct set, or -1
  p_mean: Optional[jax.Array] = None  # (P,) running mean of p(true label) (Welford)
  p_m2: Optional[jax.Array] = None  # (P,) running sum of squared deviations of it
  correct_count: Optional[jax.Array] = None  # (P,) int32 epochs correct
  margin_sum: Optional[jax.Array] = None  # (P,) float32 sum of margins
  el2n: Optional[jax.Array] = None  # (E, P) at cfg.score_epochs (0 until captured)
  grand: Optional[jax.Array] = None  # (E, P)


def init(num_examples: int, groups: Sequence[str], num_score_epochs: int) -> Accumulators:
  P = num_examples
  zeros = lambda dtype=jnp.float32: jnp.zeros(P, dtype)
  fields = {}
  if 'forgetting' in groups:
    fields.update(
        correct=jnp.zeros(P, bool),
        forgetting=zeros(jnp.int32),
        entered=jnp.full(P, -1, jnp.int32),
    )
  if 'cartography' in groups:
    fields.update(p_mean=zeros(), p_m2=zeros(), correct_count=zeros(jnp.int32))
  if 'aum' in groups:
    fields.update(margin_sum=zeros())
  for name in CAPTURED:
    if name in groups:
      fields[name] = jnp.zeros((num_score_epochs, P), jnp.float32)
  return Accumulators(epochs=jnp.int32(0), **fields)


def true_class_stats(logits_CxP: jax.Array, label_P: jax.Array):
  """(p(true label), margin, correct, EL2N), each (P,), from feature-major logits (C, P)."""
  probs = jax.nn.softmax(logits_CxP, axis=0)
  onehot = jax.nn.one_hot(label_P, logits_CxP.shape[0], axis=0, dtype=probs.dtype)
  true_logit = jnp.sum(onehot * logits_CxP, axis=0)
  other = jnp.max(jnp.where(onehot > 0, -jnp.inf, logits_CxP), axis=0)
  el2n = jnp.sqrt(jnp.sum(jnp.square(probs - onehot), axis=0))
  return jnp.sum(onehot * probs, axis=0), true_logit - other, true_logit > other, el2n


def accumulate(
    acc: Accumulators,
    epoch: jax.Array,
    logits_CxP: jax.Array,
    label_P: jax.Array,
    score_epochs: Sequence[int],
    grand_fn: Callable[[], jax.Array],
) -> Accumulators:
  """`acc` updated with the epoch whose logits are `logits_CxP`. At the epochs in
  `score_epochs` it also takes EL2N, from these logits, and GraNd, `grand_fn()` (P,): that
  needs a backward pass of its own, so it runs only there (keep `epoch` unbatched under vmap
  so the branch stays a branch)."""
  p_true, margin, correct, el2n = true_class_stats(logits_CxP, label_P)
  n = acc.epochs + 1
  new = {'epochs': n}
  if acc.forgetting is not None:
    first = acc.epochs == 0
    new['forgetting'] = acc.forgetting + (acc.correct & ~correct & ~first)
    entering = correct & (first | ~acc.correct)
    new['entered'] = jnp.where(entering, acc.epochs, acc.entered)
    new['correct'] = correct
  if acc.p_mean is not None:
    delta = p_true - acc.p_mean
    p_mean = acc.p_mean + delta / n
    new.update(
        p_mean=p_mean,
        p_m2=acc.p_m2 + delta * (p_true - p_mean),
        correct_count=acc.correct_count + correct,
    )
  if acc.margin_sum is not None:
    new['margin_sum'] = acc.margin_sum + margin
  if len(score_epochs):
    hit_E = epoch == jnp.asarray(score_epochs, jnp.int32)
    now = {'el2n': lambda: el2n}
    if acc.grand is not None:
      now['grand'] = lambda: jax.lax.cond(jnp.any(hit_E), grand_fn, lambda: jnp.zeros_like(el2n))
    for name, value in now.items():
      if getattr(acc, name) is not None:
        new[name] = jnp.where(hit_E[:, None], value()[None, :], getattr(acc, name))
  return acc.replace(**new)


def grad_norms(deltas: Sequence[jax.Array], input_sq_norms: Sequence[jax.Array]) -> jax.Array:
  """(P,) per-example norm of the gradient over all weights and biases of a stack of dense
  layers: layer l's weight gradient for example i is the outer product of its input a_li and
  its back-propagated error d_li, whose squared norm is |a_li|^2 |d_li|^2, and its bias
  gradient is d_li. `deltas[l]` is (F_l, P) (feature-major), `input_sq_norms[l]` (P,)."""
  total = 0.0
  for d_FxP, a_sq_P in zip(deltas, input_sq_norms):
    total = total + (a_sq_P + 1.0) * jnp.sum(jnp.square(d_FxP), axis=0)
  return jnp.sqrt(total)


def finalize(acc, score_epochs: Sequence[int]) -> Dict[str, np.ndarray]:
  """Named per-example columns, each (seeds, P), from host `Accumulators` with a leading seed
  axis. learned_epoch is the epoch after which the example stays correct (the number of epochs
  accumulated, T, if it is misclassified at the last one)."""
  acc = jax.tree.map(np.asarray, acc)
  n = acc.epochs[:, None].astype(np.float64)
  out = {}
  if acc.forgetting is not None:
    out['forgetting_events'] = acc.forgetting
    out['learned_epoch'] = np.where(acc.correct, acc.entered, acc.epochs[:, None]).astype(np.int32)
    out['ever_learned'] = (acc.entered >= 0).astype(np.int32)
  if acc.p_mean is not None:
    out['confidence'] = acc.p_mean
    out['variability'] = np.sqrt(np.maximum(acc.p_m2, 0) / n).astype(np.float32)
    out['correctness'] = (acc.correct_count / n).astype(np.float32)
  if acc.margin_sum is not None:
    out['aum'] = (acc.margin_sum / n).astype(np.float32)
  for name in CAPTURED:
    values = getattr(acc, name)
    if values is not None:
      for e, epoch in enumerate(score_epochs):
        out[f'{name}_t{epoch}'] = values[:, e]
  return out


def input_norms(x_PxN: np.ndarray, shift_N: np.ndarray, scale_N: np.ndarray) -> np.ndarray:
  """(P,) ||(x - shift) * scale||, the norm of each standardised input, in float64."""
  x = (np.asarray(x_PxN, np.float64) - shift_N) * scale_N
  return np.sqrt(np.sum(x * x, axis=1))
