"""Figures of one inversion run (studies/inversion.py): Fig. 1b, Fig. 3c-d, and the
observables of every measured layer."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.plotting.curves import (
    band,
    epoch_axis,
    observables_and_errors,
    train_error_axis,
)
from manifold_dynamics.plotting.style import STYLE, caption


def inversion_vs_epoch(history, inv: inversion_lib.Inversion, title: str = ''):
  """Fig. 1b: R+, R-, D (top) and train/test error (bottom) against epoch, inversion shaded."""
  fig, (top, bottom) = plt.subplots(
      2, 1, figsize=(6.4, 6.0), sharex=True, gridspec_kw=dict(height_ratios=[3, 2], hspace=0.08)
  )
  observables_and_errors(top, bottom, history, inv)
  top.plot([], [], color='0.85', lw=8, label='inversion region')
  top.set_ylabel('radius / distance (unit sphere)')
  top.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=4)
  if title:
    top.set_title(title, pad=28)
  bottom.set_ylabel('error')
  bottom.legend(loc='lower left')
  caption(
      fig,
      f'Mean $\\pm$ 2 std over {history.num_seeds} seeds. Dotted: median '
      f'$t^*$ of each curve that inverts in most seeds. Shaded (when every curve does): from '
      f'the 10th percentile of the earliest to the 90th percentile of the latest $t^*$.',
      y=-0.01,
  )
  return fig


def R_plus_per_run(history, inv: inversion_lib.Inversion, title: str = ''):
  """Fig. 3c-d: R+ of every run against training error (left) and against epoch (right),
  one thin line per run, its minimum t*(R+) marked (filled: the run inverts; open: not)."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.6), sharey=True)
  colors = plt.cm.viridis(np.linspace(0.0, 0.9, history.num_seeds))
  name = history.observables[0]  # R_plus, or R_mean for K > 2 classes
  curve = inv.curves[name]
  epochs = np.arange(history.num_epochs + 1)
  for s, color in enumerate(colors):
    r_plus = np.asarray(getattr(history, name)[s])
    error = np.asarray(history.train_error[s])
    t = int(curve.t_star[s])
    marker = dict(color=color, ms=4, zorder=3, mfc=color if curve.inverted[s] else 'white')
    shown = error > 0  # a log axis: epochs at zero training error are left out
    left.plot(error[shown], r_plus[shown], color=color, lw=0.7, alpha=0.8)
    if error[t] > 0:
      left.plot(error[t], r_plus[t], 'o', **marker)
    right.plot(epochs, r_plus, color=color, lw=0.7, alpha=0.8)
    right.plot(t, r_plus[t], 'o', **marker)
  train_error_axis(left)
  left.set_xlabel('training error $\\epsilon_{tr}$')
  left.set_ylabel(STYLE[name]['label'])
  epoch_axis(right, history.num_epochs)
  right.set_xlabel('epoch')
  inverted = int(np.sum(curve.inverted))
  caption(
      fig,
      f'{history.num_seeds} runs, one line each; circles: $t^*$, the '
      f'minimum over the epochs trained, filled where the curve has risen by more than the '
      f'tolerance since ({inverted} of {history.num_seeds} runs).',
      y=-0.02,
  )
  if title:
    fig.suptitle(title, y=1.02)
  fig.tight_layout()
  return fig


def layers_vs_epoch(history, title: str = '', layer_names: Sequence[str] = None):
  """R+, R-, D (R_mean, D_mean for K > 2) of every measured layer against epoch (one panel
  each, one colour per layer, the first darkest): how the inversion changes with depth."""
  names = history.observables
  num_layers = getattr(history, f'layer_{names[0]}').shape[-1]
  if layer_names is None:
    layer_names = [f'hidden layer {k + 1}' for k in range(num_layers)]
  colors = plt.cm.viridis(np.linspace(0.0, 0.85, num_layers))
  fig, axes = plt.subplots(1, len(names), figsize=(3.7 * len(names), 3.3), sharex=True)
  epochs = np.arange(history.num_epochs + 1)
  for ax, name in zip(axes, names):
    curves = getattr(history, f'layer_{name}')
    for k in range(num_layers):
      band(ax, epochs, curves[..., k], dict(color=colors[k], label=layer_names[k]))
    epoch_axis(ax, history.num_epochs)
    ax.set_title(STYLE[name]['label'])
    ax.set_xlabel('epoch')
  axes[0].set_ylabel('value on the unit sphere')
  axes[-1].legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=8)
  if title:
    fig.suptitle(title, y=1.04)
  caption(
      fig,
      f'Mean $\\pm$ 2 std over {history.num_seeds} seeds. The first layer is the '
      f'representation of the paper (SPEC §2).',
      y=-0.04,
      wrap=False,
  )
  return fig
