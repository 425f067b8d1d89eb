"""Figures of the predictors study (studies/predictors.py): phi beside what the data alone
predicts."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

PREDICTOR_STYLE = {
    'linear': dict(color='#1f77b4', marker='s', label='linear classifier (train error)'),
    'knn1': dict(color='#d62728', marker='^', label='1-NN leave-one-out error'),
    'knn10': dict(color='#ff7f0e', marker='v', label='10-NN leave-one-out error'),
}


def predictors_beside_phi(
    phi_S: np.ndarray,
    errors: dict,
    frequency_P: np.ndarray,
    margin_P: np.ndarray,
    known: dict = None,
    marked_P: np.ndarray = None,
    marked_label: str = '',
    title: str = '',
):
  """(a) phi (mean and std over seeds) beside the errors of the data-only predictors (and the
  Bayes error when known); (b) each example's straggler frequency against its margin under the
  best linear classifier, the known hard examples (`marked_P`) in red."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.8))
  names = ['phi'] + list(errors)
  values = [float(np.mean(phi_S))] + [errors[k] for k in errors]
  colors = ['k'] + [PREDICTOR_STYLE.get(k, {}).get('color', '0.5') for k in errors]
  left.bar(range(len(names)), values, color=colors, alpha=0.8)
  left.errorbar([0], [np.mean(phi_S)], [np.std(phi_S)], color='k', capsize=4)
  if known and 'bayes_error' in known:
    left.axhline(known['bayes_error'], color='0.3', ls='--', lw=1, label='Bayes error')
    left.legend(fontsize=8)
  left.set_xticks(range(len(names)))
  left.set_xticklabels(
      ['phi (network)', 'linear', '1-NN LOO', '10-NN LOO'][: len(names)], fontsize=8
  )
  left.set_ylabel('fraction of the training set')
  order = np.argsort(frequency_P, kind='stable')
  jitter = np.random.default_rng(0).uniform(-0.015, 0.015, len(order))
  right.scatter(margin_P, frequency_P + jitter, s=3, alpha=0.25, color='#1f77b4', lw=0)
  if marked_P is not None and np.any(marked_P):
    right.scatter(
        margin_P[marked_P],
        frequency_P[marked_P] + jitter[marked_P],
        s=4,
        alpha=0.6,
        color='#d62728',
        lw=0,
        label=marked_label,
    )
    right.legend(fontsize=8, markerscale=3)
  right.axvline(0.0, color='0.5', lw=0.8)
  low, high = np.quantile(margin_P, [0.002, 0.95])  # the bulk: a few far margins hide it
  right.set_xlim(min(low, -0.05 * high), high)
  right.set_xlabel('margin under the best linear classifier (< 0: misclassified)')
  right.set_ylabel('straggler frequency over seeds')
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def phi_against_difficulty(parameter: str, values, rows: Sequence[dict], title: str = ''):
  """A synthetic family's sweep: phi (mean +- std over seeds), the data-only predictors' errors
  and the Bayes error (when known) against the parameter that sets the difficulty."""
  fig, ax = plt.subplots(figsize=(6.0, 4.0))
  values = np.asarray(values, float)
  ax.errorbar(
      values,
      [r['phi_mean'] for r in rows],
      [r['phi_std'] for r in rows],
      color='k',
      marker='o',
      capsize=3,
      label=r'$\phi$ (network, training error at $t^*$)',
  )
  flat = [i for i, r in enumerate(rows) if r['inversion_fraction'].get('R_plus', 1.0) < 0.5]
  if flat:  # no inversion of R+ in most seeds: t* (and phi) read at a boundary or a wiggle
    ax.plot(values[flat], [rows[i]['phi_mean'] for i in flat], 'o', mfc='white', mec='k', zorder=5,
            label=r'$R_+$ inverts in < half the seeds')  # fmt: skip
  for name, style in PREDICTOR_STYLE.items():
    ax.plot(values, [r['predictors'][name]['error'] for r in rows], ls='--', lw=1, **style)
  if all('bayes_error' in (r.get('known') or {}) for r in rows):
    ax.plot(values, [r['known']['bayes_error'] for r in rows], color='0.4', lw=2, alpha=0.5,
            label='Bayes error')  # fmt: skip
  ax.set_xlabel(parameter)
  ax.set_ylabel('fraction of the training set')
  ax.legend(fontsize=7)
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return fig
