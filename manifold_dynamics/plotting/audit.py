"""Figures of the audit (studies/audit.py): the top suspects of a data set."""

import matplotlib.pyplot as plt
import numpy as np


def suspects(images, given, predicted, indices, q, known=None, title: str = '', columns: int = 10):
  """The most suspect examples, most first: each image (grey or RGB, scaled to [0, 1] for
  display) titled with its index in the split, its given label -> the networks' label (the
  seeds' majority at the end) and its straggler frequency q; a red frame on the known errors
  when `known` is given."""
  images = np.asarray(images, np.float64)
  count = len(images)
  rows = max(1, int(np.ceil(count / columns)))
  fig, axes = plt.subplots(
      rows, columns, figsize=(columns * 1.05, rows * 1.25 + 0.5), squeeze=False
  )
  for k, ax in enumerate(axes.ravel()):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
      spine.set_visible(False)
    if k >= count:
      continue
    img = images[k]
    low, high = img.min(), img.max()
    img = (img - low) / (high - low) if high > low else np.zeros_like(img)
    if img.shape[-1] == 1:
      ax.imshow(img[..., 0], cmap='gray_r', vmin=0, vmax=1)
    else:
      ax.imshow(img)
    ax.set_title(
        f'#{indices[k]}\n{given[k]}→{predicted[k]} q={q[k]:.1f}',
        fontsize=6,
        pad=1.5,
        color='#d62728' if given[k] != predicted[k] else 'black',
    )
    if known is not None and known[k]:
      for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color('#d62728')
        spine.set_linewidth(2)
  fig.suptitle(
      f'most suspect examples, most first{"; " + title if title else ""}\n'
      "given label → the networks' label (red where they differ); q: straggler frequency"
      + ('; red frame: a known error' if known is not None else ''),
      fontsize=8,
  )
  fig.tight_layout()
  return fig
