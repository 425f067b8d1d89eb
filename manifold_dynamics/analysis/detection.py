"""How well a per-example score finds known label errors (SPEC §9), in NumPy.

A detector is a score over T, higher meaning more suspect, or a set it flags (a threshold of
its own). Against the ground truth E (a boolean mask over T):

  auroc           the probability that an example of E outscores one outside it (ties 1/2);
  ap              average precision: the mean, over the examples of E, of the precision of
                  the top-ranked examples down to each of them (tied scores enter together,
                  as one threshold);
  top-k           precision and recall of the k highest scores for k = |E| and k = 5% of P
                  (ties at the cut broken at random, seeded);
  flagged         precision, recall and F1 of a detector's own set.

`ranks` says where each known error stands (1 = the most suspect; ties share their mean rank).
"""

from typing import Dict, Optional

import numpy as np
import scipy.stats


def _check(score: np.ndarray, truth: np.ndarray):
  score, truth = np.asarray(score, np.float64), np.asarray(truth, bool)
  if score.shape != truth.shape or score.ndim != 1:
    raise ValueError(f'score {score.shape} and truth {truth.shape} must be (P,) each')
  return score, truth


def auroc(score, truth) -> Optional[float]:
  """Area under the ROC curve (Mann-Whitney, ties counted 1/2); None if E or its complement is
  empty."""
  score, truth = _check(score, truth)
  n_pos, n_neg = int(truth.sum()), int((~truth).sum())
  if not n_pos or not n_neg:
    return None
  ranks = scipy.stats.rankdata(score)  # average ranks over ties
  return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(score, truth) -> Optional[float]:
  """AP = sum over distinct thresholds of (recall step) x (precision there); None if E is
  empty. Equals scikit-learn's average_precision_score, ties included."""
  score, truth = _check(score, truth)
  if not truth.any():
    return None
  order = np.argsort(-score, kind='stable')
  s, t = score[order], truth[order]
  last_of_tie = np.r_[s[1:] != s[:-1], True]  # each threshold: all scores >= it
  hits = np.cumsum(t)[last_of_tie]
  seen = (np.arange(len(s)) + 1)[last_of_tie]
  recall_step = np.diff(np.r_[0, hits]) / truth.sum()
  return float(np.sum(recall_step * hits / seen))


def top_k(score, truth, k: int, seed: int = 0) -> dict:
  """Precision and recall of the k highest scores (ties at the cut broken at random)."""
  score, truth = _check(score, truth)
  k = int(min(max(k, 0), len(score)))
  jitter = np.random.default_rng(seed).random(len(score))
  top = np.lexsort((jitter, -score))[:k]
  hits = int(truth[top].sum())
  return {
      'k': k,
      'precision': hits / k if k else None,
      'recall': hits / int(truth.sum()) if truth.any() else None,
  }


def flagged(mask, truth) -> dict:
  """Precision, recall and F1 of a flagged set (a boolean mask over T)."""
  mask, truth = np.asarray(mask, bool), np.asarray(truth, bool)
  hits = int(np.sum(mask & truth))
  precision = hits / int(mask.sum()) if mask.any() else None
  recall = hits / int(truth.sum()) if truth.any() else None
  f1 = (
      2 * precision * recall / (precision + recall)
      if precision is not None and recall is not None and precision + recall > 0
      else None
  )
  return {'flagged': int(mask.sum()), 'precision': precision, 'recall': recall, 'f1': f1}


def ranks(score, indices) -> np.ndarray:
  """Rank of each example of `indices` by `score` (1 = most suspect; ties share their mean)."""
  score = np.asarray(score, np.float64)
  return scipy.stats.rankdata(-score)[np.asarray(indices, np.int64)]


def metrics(score, truth, flag: Optional[np.ndarray] = None, seed: int = 0) -> dict:
  """Every metric of the module docstring for one detector (`flag`: its own set, if any)."""
  score, truth = _check(score, truth)
  out = {
      'auroc': auroc(score, truth),
      'ap': average_precision(score, truth),
      'top_E': top_k(score, truth, int(truth.sum()), seed),
      'top_5pct': top_k(score, truth, int(round(0.05 * len(score))), seed),
  }
  if flag is not None:
    out['flagged'] = flagged(flag, truth)
  return out


def table(rows: Dict[str, dict], title: str) -> str:
  """The metrics of every detector as a Markdown table, detectors as rows (`rows[name]` as
  `metrics` returns, with 'cost' in seed-epochs)."""
  fmt = lambda v, d=3: '-' if v is None else f'{v:.{d}f}'
  lines = [
      f'**{title}**',
      '',
      '| detector | AUROC | AP | P@|E| | R@|E| | P@5% | R@5% | flagged: P / R / F1 | cost '
      '(seed-epochs) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for name, m in rows.items():
    f = m.get('flagged')
    own = '-' if f is None else f'{fmt(f["precision"])} / {fmt(f["recall"])} / {fmt(f["f1"])}'
    lines.append(
        f'| {name} | {fmt(m["auroc"])} | {fmt(m["ap"])} | {fmt(m["top_E"]["precision"])} | '
        f'{fmt(m["top_E"]["recall"])} | {fmt(m["top_5pct"]["precision"])} | '
        f'{fmt(m["top_5pct"]["recall"])} | {own} | {m.get("cost", "-")} |'
    )
  return '\n'.join(lines)
