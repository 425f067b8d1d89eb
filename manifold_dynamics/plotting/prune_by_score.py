"""Figures of pruning by score (studies/prune_by_score.py): the clean test error against the
fraction of T kept."""

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.plotting.style import caption


def test_error_vs_kappa(points: dict, scores, kappas, ends, title: str = ''):
  """One panel per end (the hardest kept, the easiest kept): the clean test error (mean and
  standard error over seeds) against kappa, one line per score, random dashed, full T
  dotted."""
  kappas = sorted(kappas)
  fig, axes = plt.subplots(1, len(ends), figsize=(4.6 * len(ends), 3.6), sharey=True, squeeze=False)
  colors = plt.get_cmap('tab10')
  for ax, end in zip(axes[0], ends):
    for i, name in enumerate(list(scores) + ['random']):
      key = (lambda k: f'{name}:{end}:{k:g}') if name != 'random' else (lambda k: f'random::{k:g}')
      rows = [points.get(key(k)) for k in kappas]
      if not all(rows):
        continue
      mean = np.array([r['test_error_mean'] for r in rows])
      sem = np.array([r['test_error_sem'] for r in rows])
      style = dict(color='k', ls='--') if name == 'random' else dict(color=colors(i % 10))
      ax.errorbar(
          kappas,
          mean,
          sem,
          marker='o',
          ms=3,
          capsize=2,
          lw=2 if name == 'q' else 1.2,
          label=name,
          **style,
      )
    if 'full' in points:
      ax.axhline(points['full']['test_error_mean'], color='0.5', ls=':', lw=1, label='full T')
    ax.set_xlabel(r'fraction of T kept, $\kappa$')
    ax.set_title(f'the {"hardest" if end == "hard" else "easiest"} examples kept', fontsize=9)
  axes[0, 0].set_ylabel('clean test error')
  axes[0, -1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  if title:
    fig.suptitle(title, fontsize=9)
  caption(
      fig,
      'Retrained from scratch, the same number of full-batch updates at every kappa; '
      'mean and standard error over seeds.',
      y=0.0,
  )
  fig.tight_layout()
  return fig
