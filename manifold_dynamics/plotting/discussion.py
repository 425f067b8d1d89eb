"""Figures of the Discussion's sweeps (studies/discussion.py): one curve per setting, and the
init-scale sweep's rise against the weight variance."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.plotting.curves import band, epoch_axis
from manifold_dynamics.plotting.style import STYLE, caption


def curve_vs_epoch_by(histories: dict, name: str = 'R_plus', title: str = ''):
  """One observable against epoch, mean +- 2 std over seeds, one line per labelled run."""
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(histories)))
  longest = 1
  for color, (label, history) in zip(colors, histories.items()):
    band(
        ax,
        np.arange(history.num_epochs + 1),
        getattr(history, name),
        dict(color=color, label=label),
    )
    longest = max(longest, history.num_epochs)
  epoch_axis(ax, longest)
  ax.set_xlabel('epoch (full-batch updates)')
  ax.set_ylabel(STYLE[name]['label'])
  ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  return fig


def rise_vs_variance(rows: Sequence[dict], title: str = ''):
  """Init-scale sweep: the rise of R+ after its minimum and the fraction of seeds whose R+
  inverts, against Var(w) x fan-in (= Var(w) x H for the layers of fan-in H)."""
  rows = sorted(rows, key=lambda r: r['variance_times_width'])
  x = np.array([r['variance_times_width'] for r in rows])
  fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
  rise = np.array([r['rise_R_plus_mean'] for r in rows])
  spread = np.array([r['rise_R_plus_std'] for r in rows])
  left.errorbar(x, rise, yerr=2 * spread, marker='o', color=STYLE['R_plus']['color'], capsize=3)
  left.axhline(
      inversion_lib.DEFAULT_DELTA,
      color='0.5',
      ls=':',
      lw=1,
      label=f'tolerance {inversion_lib.DEFAULT_DELTA:g}',
  )
  left.set_ylabel(r'rise of $R_+$ after its minimum')
  left.legend(fontsize=8)
  right.plot(
      x, [r['inversion_fraction']['R_plus'] for r in rows], 'o-', color=STYLE['R_plus']['color']
  )
  right.set_ylabel(r'fraction of seeds whose $R_+$ inverts')
  right.set_ylim(-0.05, 1.05)
  for ax in (left, right):
    ax.set_xscale('log')
    ax.axvline(1.0, color='0.3', ls='--', lw=1)
    ax.set_xlabel(r'Var$(w)\times H$  $(= s^2/3)$')
  if title:
    fig.suptitle(title, y=1.02)
  caption(
      fig,
      r'Dashed: Var$(w) = 1/H$. Error bars: 2 std over seeds.',
      y=-0.02,
      wrap=False,
  )
  fig.tight_layout()
  return fig
