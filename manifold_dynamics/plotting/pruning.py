"""Figures of the pruning study (studies/pruning.py): Fig. 2a-c."""

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.plotting.curves import band, epoch_axis
from manifold_dynamics.plotting.style import STYLE


def pruned_R_plus_vs_epoch(histories: dict, inverted: dict, title: str = '', name='R_plus'):
  """Fig. 2a: R+ (or another curve, `name`) against epoch of every run retrained on T \\ S,
  one panel per removal kind."""
  kinds = list(histories)
  fig, axes = plt.subplots(
      1, len(kinds), figsize=(3.0 * len(kinds), 3.0), sharey=True, squeeze=False
  )
  for ax, kind in zip(axes[0], kinds):
    history = histories[kind]
    epochs = np.arange(history.num_epochs + 1)
    for curve, inv in zip(getattr(history, name), inverted[kind]):
      ax.plot(epochs, curve, lw=0.6, alpha=0.6, color='#d62728' if inv else '#1f77b4')
    epoch_axis(ax, history.num_epochs)
    ax.set_title(
        f'{kind.replace("_", " ")}\n{int(np.sum(inverted[kind]))}/'
        f'{len(inverted[kind])} runs invert',
        fontsize=9,
    )
    ax.set_xlabel('epoch')
  axes[0][0].set_ylabel(STYLE[name]['label'])
  axes[0][-1].plot([], [], color='#d62728', label='inversion')
  axes[0][-1].plot([], [], color='#1f77b4', label='monotone (rise < tolerance)')
  axes[0][-1].legend(fontsize=7, loc='upper right')
  if title:
    fig.suptitle(title, y=1.03)
  fig.tight_layout()
  return fig


def pruned_vs_eps(eps: np.ndarray, pruned: dict, control: dict, ylabel: dict, title: str = ''):
  """Fig. 2b/2c: quantities at convergence against eps of the removed S(t(eps)).

  `pruned[name]` and `control[name]` are (len(eps), runs) arrays; one panel per name; the
  random-removal control is grey.
  """
  names = list(pruned)
  cols = min(3, len(names))
  rows = int(np.ceil(len(names) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
  for ax in axes.ravel()[len(names) :]:
    ax.set_visible(False)
  for ax, name in zip(axes.ravel(), names):
    style = dict(STYLE.get(name, dict(color='#1f77b4', label=name)))
    style['label'] = r'remove $S(t(\epsilon))$'
    band(ax, eps, pruned[name].T, style)
    band(ax, eps, control[name].T, dict(color='0.55', label='remove a random set, same size'))
    ax.set_xscale('log')
    ax.invert_xaxis()
    ax.set_xlabel(r'$\epsilon$')
    ax.set_ylabel(ylabel.get(name, name))
  axes.ravel()[len(names) - 1].legend(fontsize=7, loc='best')
  if title:
    fig.suptitle(title, y=1.03)
  fig.tight_layout()
  return fig
