"""Publication figures, drawn only from what a run directory holds (History, Inversion).

Every function returns the matplotlib Figure; `save` writes it as PNG and PDF.
"""

import os
from typing import List, Sequence

import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import scipy.stats

from manifold_dynamics.analysis import inversion as inversion_lib

STYLE = {
    'R_plus': dict(color='#1f77b4', label=r'$R_+$'),
    'R_minus': dict(color='#d62728', label=r'$R_-$'),
    'D': dict(color='#2ca02c', label=r'$D$'),
    'R_mean': dict(color='#1f77b4', label=r'$R_{mean}$ (mean of $R_k$)'),
    'D_mean': dict(color='#2ca02c', label=r'$D_{mean}$ (mean of $D_{kl}$)'),
    'train_error': dict(color='#333333', label='train error'),
    'test_error': dict(color='#ff7f0e', label='test error'),
}
plt.rcParams.update(
    {
        'font.size': 10,
        'axes.spines.top': False,
        'axes.spines.right': False,
        'legend.frameon': False,
        'savefig.dpi': 200,
    }
)


def lighten(color, amount: float):
  """`color` blended towards white: amount 1 keeps it, 0 gives white."""
  rgb = np.asarray(matplotlib.colors.to_rgb(color))
  return tuple(1.0 - amount * (1.0 - rgb))


def save(fig, workdir: str, name: str) -> List[str]:
  """Writes `name`.png and `name`.pdf into workdir (atomically) and closes the figure."""
  paths = []
  for ext in ('png', 'pdf'):
    path = os.path.join(workdir, f'{name}.{ext}')
    tmp = f'{path}.tmp-{os.getpid()}.{ext}'
    fig.savefig(tmp, bbox_inches='tight')
    os.replace(tmp, path)
    paths.append(path)
  plt.close(fig)
  return paths


def _band(ax, x, values_SxT, style, k: float = 2.0):
  """Mean over seeds with a band of k std (NaN-aware: seeds missing a point are skipped)."""
  with np.errstate(all='ignore'):
    mean = np.nanmean(values_SxT, axis=0)
    std = np.nanstd(values_SxT, axis=0)
  ax.plot(x, mean, **{'lw': 1.6, **style})
  if values_SxT.shape[0] > 1:
    ax.fill_between(x, mean - k * std, mean + k * std, color=style['color'], alpha=0.2, lw=0)


def _train_error_axis(ax):
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


def _epoch_axis(ax, epochs: int):
  # symlog keeps epoch 0 (the initialisation) on an otherwise logarithmic axis.
  ax.set_xscale('symlog', linthresh=1.0, linscale=0.4)
  ax.set_xlim(0, epochs)


def _observables_and_errors(top, bottom, history, inv: inversion_lib.Inversion):
  """R+, R-, D (top) and errors (bottom, log) against epoch. A dotted line marks the median t*
  of each observable that inverts in most seeds; when all three do, the shaded inversion
  region runs from the 10th percentile of the earliest to the 90th percentile of the latest
  t*."""
  epochs = np.arange(history.num_epochs + 1)
  for ax in (top, bottom):
    _epoch_axis(ax, history.num_epochs)
  inverts = {k: np.mean(c.inverted) > 0.5 for k, c in inv.curves.items()}
  if all(inverts.values()):
    t_all = np.stack([c.t_star for c in inv.curves.values()])  # (3, seeds)
    lo, hi = np.percentile(t_all.min(axis=0), 10), np.percentile(t_all.max(axis=0), 90)
    for ax in (top, bottom):
      ax.axvspan(lo, hi, color='0.85', lw=0, zorder=0)
  for name in history.observables:
    _band(top, epochs, getattr(history, name), STYLE[name])
    if inverts[name]:
      top.axvline(np.median(inv.curves[name].t_star), color=STYLE[name]['color'], ls=':', lw=1)
  for name in ('train_error', 'test_error'):
    values = getattr(history, name)
    evaluated = np.isfinite(values).any(axis=0)  # the test set may be evaluated sparsely
    _band(bottom, epochs[evaluated], values[:, evaluated], STYLE[name])
  bottom.set_yscale('log')
  bottom.set_ylim(bottom=0.5 / history.num_examples)  # below one misclassified example
  bottom.set_xlabel('epoch')


def inversion_vs_epoch(history, inv: inversion_lib.Inversion, title: str = ''):
  """Fig. 1b: R+, R-, D (top) and train/test error (bottom) against epoch, inversion shaded."""
  fig, (top, bottom) = plt.subplots(
      2, 1, figsize=(6.4, 6.0), sharex=True, gridspec_kw=dict(height_ratios=[3, 2], hspace=0.08)
  )
  _observables_and_errors(top, bottom, history, inv)
  top.plot([], [], color='0.85', lw=8, label='inversion region')
  top.set_ylabel('radius / distance (unit sphere)')
  top.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=4)
  if title:
    top.set_title(title, pad=28)
  bottom.set_ylabel('error')
  bottom.legend(loc='lower left')
  fig.text(
      0.5,
      -0.01,
      f'Mean $\\pm$ 2 std over {history.num_seeds} seeds. Dotted: median '
      f'$t^*$ of each curve that inverts in most seeds. Shaded (when every curve does): from '
      f'the 10th percentile of the earliest to the 90th percentile of the latest $t^*$.',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
      wrap=True,
  )
  return fig


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
      _band(ax, grid[kept], values[name][:, kept], dict(style, ls=ls))
  for ax, name in zip(axes, names):
    _train_error_axis(ax)
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
  _train_error_axis(left)
  left.set_xlabel('training error $\\epsilon_{tr}$')
  left.set_ylabel(STYLE[name]['label'])
  _epoch_axis(right, history.num_epochs)
  right.set_xlabel('epoch')
  inverted = int(np.sum(curve.inverted))
  fig.text(
      0.5,
      -0.02,
      f'{history.num_seeds} runs, one line each; circles: $t^*$, the '
      f'minimum over the epochs trained, filled where the curve has risen by more than the '
      f'tolerance since ({inverted} of {history.num_seeds} runs).',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
      wrap=True,
  )
  if title:
    fig.suptitle(title, y=1.02)
  fig.tight_layout()
  return fig


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
    _epoch_axis(ax, history.num_epochs)
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
    _band(ax, eps, pruned[name].T, style)
    _band(ax, eps, control[name].T, dict(color='0.55', label='remove a random set, same size'))
    ax.set_xscale('log')
    ax.invert_xaxis()
    ax.set_xlabel(r'$\epsilon$')
    ax.set_ylabel(ylabel.get(name, name))
  axes.ravel()[len(names) - 1].legend(fontsize=7, loc='best')
  if title:
    fig.suptitle(title, y=1.03)
  fig.tight_layout()
  return fig


def compare_vs_epoch(histories: dict, inversions: dict, title: str = ''):
  """Fig. 1e-f: one column per run (e.g. true vs random labels): R+, R-, D (top) and errors
  (bottom) against epoch, with the inversion region shaded where most seeds invert."""
  names = list(histories)
  fig, axes = plt.subplots(
      2,
      len(names),
      figsize=(5.0 * len(names), 5.6),
      sharex=True,
      sharey='row',
      squeeze=False,
      gridspec_kw=dict(height_ratios=[3, 2], hspace=0.08),
  )
  for (top, bottom), name in zip(axes.T, names):
    inv = inversions[name]
    inverted = np.any([c.inverted for c in inv.curves.values()], axis=0)
    _observables_and_errors(top, bottom, histories[name], inv)
    rises = ', '.join(f'{STYLE[k]["label"]} {np.median(c.rise):.3f}' for k, c in inv.curves.items())
    top.set_title(
        f'{name.replace("_", " ")}: {int(inverted.sum())}/{len(inverted)} seeds '
        f'invert\nmedian move back: {rises}',
        fontsize=8.5,
    )
  axes[0, 0].set_ylabel('radius / distance (unit sphere)')
  axes[1, 0].set_ylabel('error')
  axes[0, -1].legend(loc='best', fontsize=8)
  axes[1, -1].legend(loc='lower left', fontsize=8)
  if title:
    fig.suptitle(title, y=1.0)
  fig.text(
      0.5,
      0.0,
      f'Mean $\\pm$ 2 std over seeds. A seed inverts when R+, R- or D moves '
      f'back by more than {inversion_lib.DEFAULT_DELTA:g} after an interior extremum '
      f'(SPEC §5). Dotted: median t* of an observable that inverts in most seeds; '
      f'shaded: the inversion region, where all three do.',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
      wrap=True,
  )
  return fig


def before_after(before: dict, after: dict, title: str = ''):
  """Fig. 1a: (R+, R-) of many independent runs at initialisation and after training (points
  and density contours), and the histogram of D. `before`/`after` map R_plus, R_minus, D to
  (samples,) arrays."""
  fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8))
  for values, color, label in (
      (before, '0.45', 'initialisation'),
      (after, '#1f77b4', 'after training'),
  ):
    x, y = np.asarray(values['R_plus'], float), np.asarray(values['R_minus'], float)
    left.scatter(
        x,
        y,
        s=7,
        color=color,
        alpha=0.45,
        lw=0,
        label=f'{label}: $R_+$ = {x.mean():.3f} $\\pm$ {x.std():.3f}, '
        f'$R_-$ = {y.mean():.3f} $\\pm$ {y.std():.3f}',
    )
    _density_contours(left, x, y, color)
    d = np.asarray(values['D'], float)
    right.hist(
        d, bins=20, color=color, alpha=0.7, label=f'{label}: {d.mean():.3f} $\\pm$ {d.std():.3f}'
    )
  left.set_xlabel(r'$R_+$')
  left.set_ylabel(r'$R_-$')
  left.set_title(r'joint distribution of $(R_+, R_-)$', fontsize=10)
  left.legend(fontsize=7.5, markerscale=3, loc='upper center', bbox_to_anchor=(0.5, -0.16))
  right.set_xlabel(r'$D$')
  right.set_ylabel('runs')
  right.set_title(r'distribution of $D$', fontsize=10)
  right.legend(fontsize=7.5, loc='upper center', bbox_to_anchor=(0.5, -0.16))
  count = len(before['R_plus'])
  if title:
    fig.suptitle(f'{title}; {count} independent initialisations', y=1.02)
  fig.tight_layout()
  return fig


def _density_contours(ax, x: np.ndarray, y: np.ndarray, color):
  """Contours of a Gaussian kernel density estimate of the points (x, y), at the levels that
  enclose about 25%, 50% and 75% of the estimated mass; none for too few or degenerate points."""
  if len(x) < 10 or np.std(x) == 0 or np.std(y) == 0:
    return
  try:
    kde = scipy.stats.gaussian_kde(np.stack([x, y]))
  except np.linalg.LinAlgError:  # the points lie on a line
    return
  pad_x, pad_y = 0.25 * np.ptp(x), 0.25 * np.ptp(y)
  gx, gy = np.meshgrid(
      np.linspace(x.min() - pad_x, x.max() + pad_x, 80),
      np.linspace(y.min() - pad_y, y.max() + pad_y, 80),
  )
  density = kde(np.stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
  at_points = np.sort(kde(np.stack([x, y])))
  levels = np.unique(np.quantile(at_points, [0.25, 0.5, 0.75]))
  if len(levels) > 1:
    ax.contour(gx, gy, density, levels=levels, colors=[color], linewidths=0.9)


def _log_box(ax, x: float, center: float, half: float, color, rel_width: float = 0.12):
  """A box of height 2 * half around `center` at x on a logarithmic x axis."""
  lo, hi = x / (1 + rel_width), x * (1 + rel_width)
  ax.add_patch(
      plt.Rectangle(
          (lo, center - half),
          hi - lo,
          2 * half,
          facecolor=color,
          edgecolor=color,
          alpha=0.35,
          lw=0.8,
      )
  )
  ax.plot([lo, hi], [center, center], color=color, lw=1.4)


def phi_vs_train_size(groups: dict, model, title: str = ''):
  """Fig. 3b: phi against P (log axis), a box of mean +- std (2 std tall) per P, and the
  finite-size fit phi_inf (1 - (P/P0)^(-gamma)) dashed, phi_inf dotted, one colour per group.

  `groups` maps a label to {'train_sizes', 'by_train_size': {P: {phi_mean, phi_std}}, 'fit'};
  `model(P, phi_inf, P0, gamma)` is the fitted form (scaling.phi_model).
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  colors = plt.cm.tab10(np.arange(len(groups)) % 10)
  all_sizes = [P for g in groups.values() for P in g['train_sizes']]
  grid = np.geomspace(min(all_sizes) / 1.3, max(all_sizes) * 1.3, 200)
  for color, (label, g) in zip(colors, groups.items()):
    sizes = np.array(g['train_sizes'], float)
    rows = [g['by_train_size'][str(int(P))] for P in sizes]
    excluded = set(g.get('excluded_from_fit', ()))
    for P, row in zip(sizes, rows):
      if int(P) in excluded:  # most seeds do not invert: no straggler fraction
        ax.plot(P, row['phi_mean'], 'x', color=color, ms=7)
      else:
        _log_box(ax, P, row['phi_mean'], row['phi_std'], color)
    fit = g['fit']
    text = label
    if fit['converged']:
      curve = model(grid, fit['phi_inf'], fit['P0'], fit['gamma'])
      ax.plot(grid[curve > 0], curve[curve > 0], '--', color=color, lw=1.2)
      ax.axhline(fit['phi_inf'], color=color, ls=':', lw=1)
      ci = fit['intervals'].get('phi_inf')
      text += (
          f': $\\phi_\\infty$ = {fit["phi_inf"]:.3f}'
          + (f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else '')
          + (' (fit at a bound)' if 'bound' in fit['message'] else '')
      )
    ax.plot([], [], color=color, lw=6, alpha=0.5, label=text)
  ax.set_xscale('log', base=2)
  ax.set_xlabel('training set size $P$')
  ax.set_ylabel(r'straggler fraction $\phi$')
  ax.legend(loc='upper left', bbox_to_anchor=(1.0, 1.0), fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  fig.text(
      0.5,
      -0.02,
      r'Boxes: mean $\pm$ std over seeds. Dashed: fit '
      r'$\phi_\infty(1-(P/P_0)^{-\gamma})$; dotted: $\phi_\infty$ (95% bootstrap interval '
      r'over seeds in the legend). x: most seeds do not invert (left out of the fit).',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
      wrap=True,
  )
  return fig


def phi_inf_vs_params(architectures: dict, title: str = ''):
  """Fig. 3e: phi_inf against the number of trainable parameters, a box of +- one bootstrap
  std (2 std tall) per architecture, darker for deeper nets, one colour per width."""
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  widths = sorted({g['width'] for g in architectures.values()})
  depths = sorted({g['depth'] for g in architectures.values()})
  cmaps = [plt.cm.Blues, plt.cm.Oranges, plt.cm.Greens, plt.cm.Purples, plt.cm.Reds]
  for label, g in architectures.items():
    fit = g['fit']
    if not fit['converged']:
      continue
    cmap = cmaps[widths.index(g['width']) % len(cmaps)]
    shade = 0.45 + 0.5 * (depths.index(g['depth']) + 1) / len(depths)
    _log_box(
        ax,
        g['num_params'],
        fit['phi_inf'],
        fit['bootstrap_std'].get('phi_inf', 0.0),
        cmap(shade),
        rel_width=0.08,
    )
    ax.annotate(
        f'{g["depth"]}x{g["width"]}',
        (g['num_params'], fit['phi_inf']),
        textcoords='offset points',
        xytext=(6, 4),
        fontsize=7,
        color='0.3',
    )
  for i, w in enumerate(widths):
    ax.plot([], [], color=cmaps[i % len(cmaps)](0.7), lw=6, label=f'width {w}')
  ax.set_xscale('log')
  ax.set_xlabel('trainable parameters')
  ax.set_ylabel(r'$\phi_\infty$')
  ax.legend(loc='best', fontsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  fig.text(
      0.5,
      -0.02,
      r'Boxes: $\phi_\infty$ $\pm$ its bootstrap std (over seeds); darker = '
      f'deeper (depths {", ".join(map(str, depths))}). Architectures whose fit did not '
      'converge are left out.',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
      wrap=True,
  )
  return fig


def curve_vs_epoch_by(histories: dict, name: str = 'R_plus', title: str = ''):
  """One observable against epoch, mean +- 2 std over seeds, one line per labelled run."""
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(histories)))
  longest = 1
  for color, (label, history) in zip(colors, histories.items()):
    _band(
        ax,
        np.arange(history.num_epochs + 1),
        getattr(history, name),
        dict(color=color, label=label),
    )
    longest = max(longest, history.num_epochs)
  _epoch_axis(ax, longest)
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
  fig.text(
      0.5,
      -0.02,
      r'Dashed: Var$(w) = 1/H$. Error bars: 2 std over seeds.',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
  )
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
      _band(ax, epochs, curves[..., k], dict(color=colors[k], label=layer_names[k]))
    _epoch_axis(ax, history.num_epochs)
    ax.set_title(STYLE[name]['label'])
    ax.set_xlabel('epoch')
  axes[0].set_ylabel('value on the unit sphere')
  axes[-1].legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=8)
  if title:
    fig.suptitle(title, y=1.04)
  fig.text(
      0.5,
      -0.04,
      f'Mean $\\pm$ 2 std over {history.num_seeds} seeds. The first layer is the '
      f'representation of the paper (SPEC §2).',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
  )
  return fig


def overlap_matrix(names: Sequence[str], rows: Sequence[dict], title: str = ''):
  """Straggler overlap between architectures as two heat maps (the pairs are symmetric): the
  fraction of S(t*) two runs share, and z = (<M> - <M_hat>) / sigma_M against the
  hypergeometric null. `rows` are dicts with run_0, run_1, shared_fraction, z."""
  index = {n: i for i, n in enumerate(names)}
  shared = np.full((len(names), len(names)), np.nan)
  z = np.full_like(shared, np.nan)
  for r in rows:
    i, j = index[r['run_0']], index[r['run_1']]
    for a, b in ((i, j), (j, i)):
      shared[a, b] = np.nan if r['shared_fraction'] is None else r['shared_fraction']
      z[a, b] = np.nan if r['z'] is None else r['z']
  size = 0.42 * len(names) + 2.0
  fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size))
  for ax, values, label, fmt in (
      (axes[0], shared, 'fraction of stragglers shared', '.2f'),
      (axes[1], z, 'z against the null', '.0f'),
  ):
    image = ax.imshow(values, cmap='viridis')
    fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    if len(names) <= 16:
      for (a, b), v in np.ndenumerate(values):
        if np.isfinite(v):
          ax.text(
              b,
              a,
              format(v, fmt),
              ha='center',
              va='center',
              fontsize=5.5,
              color='white' if v < np.nanmean(values) else 'black',
          )
  if title:
    fig.suptitle(title, y=1.0)
  fig.text(
      0.5,
      0.0,
      'Seed i of one architecture against seed i+1 of the other (within one '
      'architecture: disjoint seed pairs).',
      ha='center',
      va='top',
      fontsize=7.5,
      color='0.3',
  )
  fig.tight_layout()
  return fig


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
        _band(ax, sigmas, values, style, k=1.0)
    if 'random' in errors:
      _band(ax, sigmas, errors['random'], dict(color='k', ls='--', label='random set'), k=1.0)
    ax.set_xlabel(r'noise std $\sigma$ on the standardised test pixels')
    ax.set_title(label, fontsize=9)
  axes[0].set_ylabel('test error')
  axes[1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  if title:
    fig.suptitle(f'pruning by score, retrained from scratch; {title}', fontsize=10)
  fig.tight_layout()
  return fig


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
