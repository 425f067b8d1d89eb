"""Figures of the straggler study (studies/stragglers.py): images, stability (Fig. 2d) and
overlap across architectures."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def straggler_grid(
    images_KxRxC: np.ndarray,
    labels_K: np.ndarray,
    split_indices_K: np.ndarray,
    title: str = '',
    columns: int = 10,
):
  """Images of stragglers, each titled with its label (+1 even / -1 odd class) and its index in
  the dataset's train split."""
  count = len(images_KxRxC)
  rows = max(1, int(np.ceil(count / columns)))
  fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.95, rows * 1.1 + 0.4), squeeze=False)
  for k, ax in enumerate(axes.ravel()):
    ax.set_axis_off()
    if k < count:
      ax.imshow(images_KxRxC[k], cmap='gray_r', vmin=0, vmax=1)
      ax.set_title(f'#{split_indices_K[k]} y={labels_K[k]:+d}', fontsize=6.5)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def z_vs_train_error(
    eps: np.ndarray, z: np.ndarray, z_null: np.ndarray, shared: np.ndarray, title: str = ''
):
  """Fig. 2d: stability of S(t(eps)) across seeds against eps: z-scores and shared fraction."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2))
  left.plot(eps, z, 'o-', color='#1f77b4', ms=3, label=r'$z$ (spread of observed $M$)')
  left.plot(eps, z_null, 's--', color='0.4', ms=3, label=r'$z$ (spread of null $\hat M$)')
  if np.nanmin(np.concatenate([z, z_null]), initial=np.inf) > 0:
    left.set_yscale('log')
  left.set_ylabel('z-score of the overlap')
  right.plot(eps, shared, 'o-', color='#d62728', ms=3)
  right.set_ylabel(r'shared fraction $|S_0 \cap S_1| / |S_0|$')
  right.set_ylim(0, 1)
  for ax in (left, right):
    ax.set_xscale('log')
    # Explicit limits, decreasing (training proceeds left to right): an all-NaN z curve has
    # no data to autoscale from.
    ax.set_xlim(np.max(eps) * 1.3, np.min(eps) / 1.3)
    ax.set_xlabel(r'training error $\epsilon$ of $S(t(\epsilon))$')
  left.legend(fontsize=8)
  if title:
    fig.suptitle(title, y=1.02)
  fig.tight_layout()
  return fig


def overlap_by_architecture(
    labels: Sequence[str], observed: np.ndarray, null: np.ndarray, z: np.ndarray, title: str = ''
):
  """Mean overlap |S_0 ∩ S_1| of S(t*) for pairs of architectures against the random null."""
  x = np.arange(len(labels))
  fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2.5, 3.2))
  ax.bar(x - 0.2, observed, 0.4, color='#1f77b4', label=r'observed $\langle M \rangle$')
  ax.bar(x + 0.2, null, 0.4, color='0.7', label=r'null $\langle \hat M \rangle$ (random sets)')
  for xi, top, zi in zip(x, observed, z):
    ax.text(xi - 0.2, top, f'z={zi:.0f}', ha='center', va='bottom', fontsize=7)
  ax.set_xticks(x, labels, fontsize=8)
  ax.set_xlabel('architectures of run 0 / run 1 (depth x width)')
  ax.set_ylabel(r'overlap of $S(t^*)$')
  ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  if title:
    ax.set_title(title)
  fig.tight_layout()
  return fig
