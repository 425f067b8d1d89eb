"""The field's own label-error tools on this engine's outputs (SPEC §9): cleanlab, the real
package (an optional extra: pip install -e '.[compare]'), never a re-implementation of it.

cleanlab takes `labels` (P,) in [0, K) and `pred_probs` (P, K), each row a distribution over
the K classes. This engine gives them two ways, both from the runs an audit trains:

  in-sample     the softmax of the trained nets on T itself, averaged over seeds, at each
                seed's t* or at the last epoch (free: no extra training);
  out-of-fold   K-fold cross-validation (stratified, K = 5 as cleanlab's default): the same
                model and training on K - 1 folds, each example predicted by the nets that
                did not see it (`stratified_folds` assigns the folds).

A run's per-epoch probabilities are one array too (cleanlab issue #974): any epoch's
(seeds, P, K) from `engine.evaluate.replay_at(..., names=('probs',))`.
"""

from typing import Dict

import numpy as np

from manifold_dynamics.errors import UserError

QUALITY_METHODS = ('self_confidence', 'normalized_margin')


def cleanlab_modules():
  """(cleanlab.filter, cleanlab.rank, version), or a one-line error saying how to get it."""
  try:
    import cleanlab  # pylint: disable=g-import-not-at-top
    from cleanlab import filter as cl_filter  # pylint: disable=g-import-not-at-top
    from cleanlab import rank as cl_rank  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(
        'a cleanlab detector was asked for, but cleanlab is not installed: pip install -e '
        "'.[compare]' (or run without --cleanlab)."
    ) from None
  return cl_filter, cl_rank, cleanlab.__version__


def cleanlab_detectors(labels: np.ndarray, pred_probs: np.ndarray) -> Dict[str, np.ndarray]:
  """cleanlab's label quality scores (`rank.get_label_quality_scores`, each method of
  QUALITY_METHODS, turned into suspicion: 1 - quality) and its label issues
  (`filter.find_label_issues`, a boolean mask), from `pred_probs` (P, K)."""
  cl_filter, cl_rank, _ = cleanlab_modules()
  labels = np.asarray(labels, np.int64)
  probs = np.asarray(pred_probs, np.float64)
  probs = probs / probs.sum(axis=1, keepdims=True)  # float32 softmax rows, summing to 1
  out = {}
  for method in QUALITY_METHODS:
    out[method] = 1.0 - cl_rank.get_label_quality_scores(labels, probs, method=method)
  # n_jobs=1: no fork of a process that runs JAX's threads
  out['find_label_issues'] = cl_filter.find_label_issues(labels, probs, n_jobs=1)
  return out


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
  """(P,) the fold of each example: within each class, a random order dealt out in turn, so
  that every fold holds each class in proportion."""
  labels = np.asarray(labels)
  if folds < 2:
    raise UserError(f'--cv_folds must be >= 2, got {folds}.')
  rng = np.random.default_rng(seed)
  fold = np.empty(len(labels), np.int64)
  start = 0
  for c in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == c))
    fold[members] = (start + np.arange(len(members))) % folds
    start += len(members)
  return fold
