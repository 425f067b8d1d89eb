"""The axes and curves the studies' figures share: mean and band over seeds, the epoch and
training-error axes, and the observables against training error (Fig. 1c-d, 3a and every
study that compares runs at equal training error)."""

from typing import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.plotting.style import STYLE


def band(ax, x, values_SxT, style, k: float = 2.0):
  """Mean over seeds with a band of k std (NaN-aware: seeds missing a point are skipped)."""
  with np.errstate(all='ignore'):
    mean = np.nanmean(values_SxT, axis=0)
    std = np.nanstd(values_SxT, axis=0)
  ax.plot(x, mean, **{'lw': 1.6, **style})
  if values_SxT.shape[0] > 1:
    ax.fill_between(x, mean - k * std, mean + k * std, color=style['color'], alpha=0.2, lw=0)


def train_error_axis(ax):
  """A logarithmic, inverted (training proceeds left to right) axis of training errors,
  labelled at 1-2-5 values: the range often spans less than a decade, where the default log
  labels of the minor ticks overlap."""
  ax.set_xscale('log')
  lo, hi = sorted(ax.get_xlim())
  ax.set_xlim(hi, lo)  # not invert_xaxis: it toggles, and panels sharing x would undo it
  decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
  mantissas = (1, 2, 5) if len(decades) <= 3 else (1,)
  ticks = [m * 10.0**d for d in decades for m in mantissas if lo <= m * 10.0**d <= hi]
  ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
  ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:g}'))
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def epoch_axis(ax, epochs: int):
  # symlog keeps epoch 0 (the initialisation) on an otherwise logarithmic axis.
  ax.set_xscale('symlog', linthresh=1.0, linscale=0.4)
  ax.set_xlim(0, epochs)


def observables_and_errors(top, bottom, history, inv: inversion_lib.Inversion):
  """R+, R-, D (top) and errors (bottom, log) against epoch. A dotted line marks the median t*
  of each observable that inverts in most seeds; when all three do, the shaded inversion
  region runs from the 10th percentile of the earliest to the 90th percentile of the latest
  t*."""
  epochs = np.arange(history.num_epochs + 1)
  for ax in (top, bottom):
    epoch_axis(ax, history.num_epochs)
  inverts = {k: np.mean(c.inverted) > 0.5 for k, c in inv.curves.items()}
  if all(inverts.values()):
    t_all = np.stack([c.t_star for c in inv.curves.values()])  # (3, seeds)
    lo, hi = np.percentile(t_all.min(axis=0), 10), np.percentile(t_all.max(axis=0), 90)
    for ax in (top, bottom):
      ax.axvspan(lo, hi, color='0.85', lw=0, zorder=0)
  for name in history.observables:
    band(top, epochs, getattr(history, name), STYLE[name])
    if inverts[name]:
      top.axvline(np.median(inv.curves[name].t_star), color=STYLE[name]['color'], ls=':', lw=1)
  for name in ('train_error', 'test_error'):
    values = getattr(history, name)
    evaluated = np.isfinite(values).any(axis=0)  # the test set may be evaluated sparsely
    band(bottom, epochs[evaluated], values[:, evaluated], STYLE[name])
  bottom.set_yscale('log')
  bottom.set_ylim(bottom=0.5 / history.num_examples)  # below one misclassified example
  bottom.set_xlabel('epoch')


def observables_vs_train_error(
    curves: Sequence,
    labels: Sequence[str] = None,
    linestyles: Sequence[str] = None,
    title: str = '',
    phi: float = None,
    colors: Sequence = None,
):
  """R+, R-, D against training error (one panel each); one line per (history, label).

  `curves` are histories; each is read at t(eps) on a common grid (inversion.at_train_error).
  Several histories get `colors` (default: viridis) and `linestyles` (default: solid).
  """
  curves = list(curves)
  labels = labels or [None] * len(curves)
  linestyles = linestyles or ['-'] * len(curves)
  if colors is None and len(curves) > 1:
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(curves)))
  grid = np.geomspace(
      max(np.max(h.train_error[:, 0]) for h in curves),
      min(max(np.min(h.train_error), 0.5 / h.num_examples) for h in curves),
      80,
  )
  names = curves[0].observables
  fig, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3.2), sharex=True)
  for i, (history, label, ls) in enumerate(zip(curves, labels, linestyles)):
    values = inversion_lib.at_train_error(history, grid)
    for ax, name in zip(axes, names):
      style = dict(STYLE[name], label=label)
      if colors is not None:
        style['color'] = colors[i]
      kept = np.mean(np.isfinite(values[name]), axis=0) >= 0.5  # reached by most seeds
      band(ax, grid[kept], values[name][:, kept], dict(style, ls=ls))
  for ax, name in zip(axes, names):
    train_error_axis(ax)
    ax.set_xlabel('training error $\\epsilon_{tr}$')
    ax.set_title(STYLE[name]['label'])
    if phi is not None:
      ax.axvline(phi, color='0.4', ls='--', lw=1, label=r'$\phi$ (mean)')
  axes[0].set_ylabel('value on the unit sphere')
  if len(curves) > 1:
    axes[-1].legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=8)
  elif phi is not None:
    axes[-1].legend(loc='best', fontsize=8)
  if title:
    fig.suptitle(title, y=1.02)
  fig.tight_layout()
  return fig
