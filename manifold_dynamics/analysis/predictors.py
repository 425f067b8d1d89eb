"""Predictors of phi and of the stragglers that train no network (issue 20), in NumPy/SciPy.

On the standardised inputs of T (SPEC §1) and its labels:

  linear      the best linear classifier: logistic regression (softmax for K classes) fitted
              by L-BFGS to convergence, with a vanishing L2 penalty (1e-6 per example) so that
              separable data has a finite optimum; its training error, misclassified set and
              each example's margin (the true class's logit minus the largest other, divided
              by the norm of the weights: a distance for K = 2);
  knn         the k-nearest-neighbour leave-one-out error (k = 1 and 10, Euclidean distances,
              majority vote, ties to the smallest class), its misclassified set, and each
              example's fraction of its 10 neighbours of another class;
  twonn       the TwoNN estimate of the intrinsic dimension (Facco et al. 2017): the maximum
              likelihood d = P / sum_i log(r2_i / r1_i) over the ratios of each example's
              second to first neighbour distance.

`compare` puts each beside the stragglers S(t*) of a run: the overlap of its misclassified
set with S(t*) per seed (Jaccard, and z against the hypergeometric null of
analysis/stragglers.py), and the Spearman correlation, over examples, of its per-example
score with the straggler frequency (the fraction of seeds in whose S(t*) the example is).
"""

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np
import scipy.optimize
from scipy import special, stats

from manifold_dynamics.analysis import scores as score_stats
from manifold_dynamics.analysis import stragglers as stragglers_lib

L2 = 1e-6  # per-example L2 penalty of the linear classifier (only to bound separable data)
KS = (1, 10)
CHUNK = 1024  # rows of the distance matrix computed at once


@dataclasses.dataclass
class Predictor:
  """A data-only predictor: its error on T, the examples it gets wrong, a per-example score
  oriented so that larger = harder."""

  error: float
  wrong: np.ndarray  # (P,) bool
  hardness: np.ndarray  # (P,) float


def class_indices(y: np.ndarray) -> np.ndarray:
  """Labels as classes 0..K-1: a binary task's +1 / -1 become 0 / 1, class indices stay."""
  y = np.asarray(y)
  return (y < 0).astype(np.int64) if set(np.unique(y)) <= {-1, 1} else y.astype(np.int64)


def linear(x: np.ndarray, y: np.ndarray, max_iter: int = 2000) -> Predictor:
  """The logistic (softmax) regression on (x, y) fitted to convergence; see module docstring."""
  c = class_indices(y)
  P, N = x.shape
  K = int(c.max()) + 1
  x = np.asarray(x, np.float64)
  onehot = np.eye(K)[c]

  def loss_and_grad(theta):
    W, b = theta[: N * K].reshape(N, K), theta[N * K :]
    logits = x @ W + b
    logp = logits - special.logsumexp(logits, axis=1, keepdims=True)
    loss = -np.sum(onehot * logp) / P + 0.5 * L2 * np.sum(W**2)
    g = (np.exp(logp) - onehot) / P
    return loss, np.concatenate([(x.T @ g + L2 * W).ravel(), g.sum(axis=0)])

  theta = np.zeros(N * K + K)
  result = scipy.optimize.minimize(
      loss_and_grad, theta, jac=True, method='L-BFGS-B', options={'maxiter': max_iter}
  )
  W, b = result.x[: N * K].reshape(N, K), result.x[N * K :]
  logits = x @ W + b
  true = logits[np.arange(P), c]
  other = np.max(np.where(np.eye(K, dtype=bool)[c], -np.inf, logits), axis=1)
  margin = (true - other) / max(np.linalg.norm(W[:, :, None] - W[:, None, :], axis=0).max(), 1e-12)
  wrong = np.argmax(logits, axis=1) != c
  return Predictor(float(wrong.mean()), wrong, -margin)


def neighbours(x: np.ndarray, k: int) -> np.ndarray:
  """(P, k) indices of each example's k nearest other examples (Euclidean), nearest first,
  and (P, k) their distances; computed CHUNK rows at a time."""
  x = np.asarray(x, np.float64)
  sq = np.sum(x**2, axis=1)
  index = np.empty((len(x), k), np.int64)
  distance = np.empty((len(x), k))
  for start in range(0, len(x), CHUNK):
    rows = slice(start, min(start + CHUNK, len(x)))
    d2 = sq[rows, None] - 2.0 * x[rows] @ x.T + sq[None]
    d2[np.arange(d2.shape[0]), np.arange(rows.start, rows.stop)] = np.inf  # leave one out
    part = np.argpartition(d2, k, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1, kind='stable')
    index[rows] = np.take_along_axis(part, order, axis=1)
    distance[rows] = np.sqrt(np.maximum(np.take_along_axis(d2, index[rows], axis=1), 0.0))
  return index, distance


def knn(y: np.ndarray, index: np.ndarray, k: int) -> Predictor:
  """Leave-one-out k-NN from the neighbour indices of `neighbours` (at least k of them)."""
  c = class_indices(y)
  votes = c[index[:, :k]]
  K = int(c.max()) + 1
  counts = np.stack([np.sum(votes == j, axis=1) for j in range(K)], axis=1)
  wrong = np.argmax(counts, axis=1) != c
  return Predictor(float(wrong.mean()), wrong, 1.0 - counts[np.arange(len(c)), c] / k)


def twonn(distance: np.ndarray) -> float:
  """The TwoNN maximum-likelihood intrinsic dimension from the two nearest distances (pairs
  of duplicate points, r1 = 0, are left out)."""
  r1, r2 = distance[:, 0], distance[:, 1]
  ok = r1 > 0
  return float(np.sum(ok) / np.sum(np.log(r2[ok] / r1[ok])))


def all_predictors(x: np.ndarray, y: np.ndarray) -> Dict[str, Predictor]:
  """linear, knn1, knn10 on (x, y), and the TwoNN dimension (as a Predictor-less number)."""
  index, distance = neighbours(x, max(KS))
  out = {'linear': linear(x, y)}
  out.update({f'knn{k}': knn(y, index, k) for k in KS})
  return out, twonn(distance)


def straggler_frequency(sets: Sequence[np.ndarray], num_examples: int) -> np.ndarray:
  """(P,) the fraction of seeds whose S(t*) holds each example."""
  return score_stats.straggler_columns(sets, num_examples).mean(axis=0)


def compare(
    predictor: Predictor, sets: Sequence[np.ndarray], num_examples: int
) -> Dict[str, Optional[float]]:
  """The predictor beside the stragglers of every seed: its misclassified set against each
  S(t*) (mean Jaccard, overlap, null overlap and z), and the Spearman correlation of its
  hardness with the straggler frequency."""
  wrong = np.flatnonzero(predictor.wrong)
  ov = stragglers_lib.overlap([wrong] * len(sets), list(sets), num_examples)
  jaccard = [len(np.intersect1d(wrong, s)) / max(len(np.union1d(wrong, s)), 1) for s in sets]
  frequency = straggler_frequency(sets, num_examples)
  rho = stats.spearmanr(predictor.hardness, frequency).statistic
  return {
      'error': predictor.error,
      'misclassified': int(len(wrong)),
      'jaccard_mean': float(np.mean(jaccard)),
      **ov.summary(),
      'spearman_with_straggler_frequency': None if not np.isfinite(rho) else float(rho),
  }


def auc(score: np.ndarray, positive: np.ndarray) -> Optional[float]:
  """The probability that a random positive example scores above a random negative one (ties
  count half): the Mann-Whitney U over n_pos n_neg; None without both kinds."""
  positive = np.asarray(positive, bool)
  if positive.all() or not positive.any():
    return None
  u = stats.mannwhitneyu(score[positive], score[~positive]).statistic
  return float(u / (positive.sum() * (~positive).sum()))


def truth_agreement(
    truth: Dict[str, np.ndarray], sets: Sequence[np.ndarray], num_examples: int
) -> dict:
  """How far S(t*) coincides with what is known of each example. For a known set (flipped
  labels, tail members, examples on the wrong side of the Bayes boundary): the precision and
  recall of S(t*) per seed (means), the overlap z against the hypergeometric null, and the AUC
  of the straggler frequency at finding it. For a known margin (larger = easier: the distance
  to the Bayes boundary, the teacher's latent margin): the Spearman correlation of the
  straggler frequency with minus the margin, and the AUC of the frequency at finding the
  tenth of the examples with the smallest margin."""
  frequency = straggler_frequency(sets, num_examples)
  out = {}
  for name, values in truth.items():
    values = np.asarray(values)
    if values.dtype == bool:
      known = np.flatnonzero(values)
      if not len(known):
        continue
      hits = [len(np.intersect1d(s, known)) for s in sets]
      ov = stragglers_lib.overlap([known] * len(sets), list(sets), num_examples).summary()
      out[name] = {
          'count': int(len(known)),
          'precision': float(np.mean([h / max(len(s), 1) for h, s in zip(hits, sets)])),
          'recall': float(np.mean(hits) / len(known)),
          'z_null': ov['z_null'],
          'auc_of_straggler_frequency': auc(frequency, values),
      }
    elif np.issubdtype(values.dtype, np.floating):
      hardest = values <= np.quantile(values, 0.1)
      rho = stats.spearmanr(frequency, -values).statistic
      out[name] = {
          'spearman_of_straggler_frequency_with_minus_it': (
              float(rho) if np.isfinite(rho) else None
          ),
          'auc_of_straggler_frequency_for_its_smallest_tenth': auc(frequency, hardest),
      }
  return out
