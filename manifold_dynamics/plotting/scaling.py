"""Figures of the scaling sweeps (studies/scaling.py): Fig. 3b, Fig. 3e and the straggler
overlap between architectures."""

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.plotting.style import caption


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
  caption(
      fig,
      r'Boxes: mean $\pm$ std over seeds. Dashed: fit '
      r'$\phi_\infty(1-(P/P_0)^{-\gamma})$; dotted: $\phi_\infty$ (95% bootstrap interval '
      r'over seeds in the legend). x: most seeds do not invert (left out of the fit).',
      y=-0.02,
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
  caption(
      fig,
      r'Boxes: $\phi_\infty$ $\pm$ its bootstrap std (over seeds); darker = '
      f'deeper (depths {", ".join(map(str, depths))}). Architectures whose fit did not '
      'converge are left out.',
      y=-0.02,
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
  caption(
      fig,
      'Seed i of one architecture against seed i+1 of the other (within one '
      'architecture: disjoint seed pairs).',
      y=0.0,
      wrap=False,
  )
  fig.tight_layout()
  return fig
