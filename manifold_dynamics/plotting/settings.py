"""Figures of the settings grid (studies/settings.py): where a conv net's inversion lives."""

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.analysis.grid import inverts_somewhere
from manifold_dynamics.plotting.style import caption

# The curves drawn in one panel: parity's R+ beside K classes' mean radius, D beside D_mean.
PANELS = (('R_plus', 'R_mean'), ('R_minus',), ('D', 'D_mean'))


def layers_by_cell(rows, title: str = ''):
  """A heat map per curve (PANELS): cells (rows) against measured layers (columns, flattened then
  pooled), the fraction of seeds whose curve inverts there (read after the transient), the
  clearest layer of each cell framed (none where no curve inverts at any layer)."""
  rows = [r for r in rows if r.get('by_layer')]
  layers = list(dict.fromkeys(name for r in rows for name in r['by_layer']))
  measured = {c for r in rows for b in r['by_layer'].values() for c in b['curves']}
  panels = [p for p in PANELS if measured & set(p)]
  fig, axes = plt.subplots(
      1, len(panels), figsize=(0.55 * len(layers) * len(panels) + 3.0, 0.32 * len(rows) + 2.2),
      squeeze=False, sharey=True,
  )  # fmt: skip
  for ax, panel in zip(axes[0], panels):
    values = np.full((len(rows), len(layers)), np.nan)
    for i, r in enumerate(rows):
      for j, name in enumerate(layers):
        curves = r['by_layer'].get(name, {}).get('curves', {})
        for curve in set(panel) & set(curves):
          values[i, j] = curves[curve]['inversion_fraction']
    ax.imshow(values, cmap='viridis', vmin=0, vmax=1, aspect='auto')
    for i, r in enumerate(rows):
      k = layers.index(r['clearest']['layer']) if inverts_somewhere(r) else None
      if k is not None and np.isfinite(values[i, k]):  # not in a panel the cell has no curve in
        ax.add_patch(plt.Rectangle((k - 0.5, i - 0.5), 1, 1, fill=False, ec='#d62728', lw=1.5))
      for j in range(len(layers)):
        if np.isfinite(values[i, j]):
          ax.text(j, i, f'{100 * values[i, j]:.0f}', ha='center', va='center', fontsize=5.5,
                  color='white' if values[i, j] < 0.5 else 'black')  # fmt: skip
    ax.set_xticks(range(len(layers)), [n.replace(':pooled', '\n(pooled)') for n in layers],
                  rotation=90, fontsize=6)  # fmt: skip
    ax.set_title(' or '.join(c for c in panel if c in measured), fontsize=9)
  axes[0, 0].set_yticks(range(len(rows)), [r['cell'] for r in rows], fontsize=6)
  if title:
    fig.suptitle(title, fontsize=9)
  caption(
      fig,
      '% of seeds whose curve inverts at each measured layer (t* read after the initial '
      'transient, SPEC §8); red frame: the clearest layer of the cell, where any inverts.',
      y=0.0,
  )
  fig.tight_layout()
  return fig
