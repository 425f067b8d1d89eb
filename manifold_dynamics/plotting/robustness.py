"""Figures of the robustness studies (studies/robustness.py): Fig. 1a and Fig. 1e-f."""

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.plotting.curves import observables_and_errors
from manifold_dynamics.plotting.style import STYLE, caption


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
    observables_and_errors(top, bottom, histories[name], inv)
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
  caption(
      fig,
      f'Mean $\\pm$ 2 std over seeds. A seed inverts when R+, R- or D moves '
      f'back by more than {inversion_lib.DEFAULT_DELTA:g} after an interior extremum '
      f'(SPEC §5). Dotted: median t* of an observable that inverts in most seeds; '
      f'shaded: the inversion region, where all three do.',
      y=0.0,
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
