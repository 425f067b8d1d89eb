"""Figures of the scores study (studies/scores.py): the data map, the hardest examples by
score, and pruning by score."""

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.plotting.curves import band


def data_map(confidence_P, variability_P, straggler_frequency_P, title: str = ''):
  """Dataset cartography (Swayamdipta et al. 2020): each training example at its variability
  (x) and confidence (y), mean over seeds, coloured by the fraction of seeds in which it is a
  straggler; stragglers drawn last, on top."""
  order = np.argsort(straggler_frequency_P, kind='stable')
  fig, ax = plt.subplots(figsize=(5.4, 4.4))
  points = ax.scatter(
      variability_P[order],
      confidence_P[order],
      c=straggler_frequency_P[order],
      s=4,
      cmap='viridis',
      vmin=0,
      vmax=1,
      linewidths=0,
  )
  fig.colorbar(points, ax=ax, label='straggler frequency over seeds')
  ax.set_xlabel('variability (std over epochs of p(true label))')
  ax.set_ylabel('confidence (mean over epochs of p(true label))')
  ax.set_ylim(0, 1.02)
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return fig


def hardest_grid(images: dict, labels: dict, split_indices: dict, title: str = ''):
  """One row per score: the training examples it ranks hardest (mean over seeds), hardest
  first, each titled with its index in the train split and its label as trained."""
  names = list(images)
  columns = max(len(v) for v in images.values())
  fig, axes = plt.subplots(
      len(names), columns, figsize=(columns * 0.8 + 1.4, len(names) * 0.95 + 0.5), squeeze=False
  )
  for row, name in zip(axes, names):
    for k, ax in enumerate(row):
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      if k < len(images[name]):
        ax.imshow(images[name][k], cmap='gray_r', vmin=0, vmax=1)
        ax.set_title(f'#{split_indices[name][k]} {labels[name][k]:+d}', fontsize=5.5, pad=1.5)
    row[0].set_ylabel(name, rotation=0, ha='right', va='center', fontsize=7.5)
  if title:
    fig.suptitle(f'hardest examples by score, {title}', fontsize=9)
  fig.tight_layout()
  return fig


def test_error_vs_sigma(sigmas, errors: dict, title: str = ''):
  """Pruning by score: test error against the noise std sigma of the retrained nets, one line
  per score (mean over runs, band = std); `errors['top:NAME']` / `['bottom:NAME']` are
  (runs, len(sigmas)); 'random' is the control, drawn in both panels."""
  ends = [('top', 'top-k (hardest) removed'), ('bottom', 'bottom-k (easiest) removed')]
  fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8), sharey=True)
  names = list(dict.fromkeys(k.split(':', 1)[1] for k in errors if ':' in k))
  colors = plt.get_cmap('tab10')
  for ax, (end, label) in zip(axes, ends):
    for i, name in enumerate(names):
      values = errors.get(f'{end}:{name}')
      if values is not None:
        style = dict(color=colors(i % 10), label=name, lw=2.2 if name == 'straggler' else 1.2)
        band(ax, sigmas, values, style, k=1.0)
    if 'random' in errors:
      band(ax, sigmas, errors['random'], dict(color='k', ls='--', label='random set'), k=1.0)
    ax.set_xlabel(r'noise std $\sigma$ on the standardised test pixels')
    ax.set_title(label, fontsize=9)
  axes[0].set_ylabel('test error')
  axes[1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  if title:
    fig.suptitle(f'pruning by score, retrained from scratch; {title}', fontsize=10)
  fig.tight_layout()
  return fig
