"""Figures of the learning-rate study (studies/learning_rate.py): the training loss of every
candidate lr, per model and dataset."""

import matplotlib.pyplot as plt
import numpy as np

from manifold_dynamics.plotting.curves import epoch_axis
from manifold_dynamics.plotting.style import caption


def loss_vs_epoch(histories: dict, checks: dict):
  """One panel per (model, dataset): the training loss (mean over seeds) of each lr tried,
  dashed where it failed the rule, a cross at the first epoch where a seed's loss rose."""
  panels = list(dict.fromkeys((m, d) for m, d, _ in histories))
  cols = min(3, len(panels))
  rows = int(np.ceil(len(panels) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False)
  for ax in axes.ravel()[len(panels) :]:
    ax.set_visible(False)
  lrs = sorted({lr for _, _, lr in histories}, reverse=True)
  colors = dict(zip(lrs, plt.cm.viridis(np.linspace(0.0, 0.85, len(lrs)))))
  for ax, (model, dataset) in zip(axes.ravel(), panels):
    longest = 1
    for lr in lrs:
      if (model, dataset, lr) not in histories:
        continue
      history, check = histories[model, dataset, lr], checks[model, dataset, lr]
      loss = np.mean(history.loss, axis=0)
      epochs = np.arange(len(loss))
      longest = max(longest, history.num_epochs)
      ls = '-' if check['passes'] else '--'
      label = f'lr {lr:g}: ' + (
          'falls' if check['passes'] else f'rises ({check["seeds_failing"]} seeds)'
      )
      ax.plot(epochs, loss, ls=ls, color=colors[lr], lw=1.3, label=label)
      rises = [t for t in check['first_rise'] if t >= 0]
      if rises:
        t = min(rises)
        ax.plot(t, loss[t], 'x', color=colors[lr], ms=7)
    epoch_axis(ax, longest)
    ax.set_yscale('log')
    ax.set_title(f'{model}, {dataset}', fontsize=9)
    ax.set_xlabel('epoch')
    ax.legend(fontsize=7)
  axes[0, 0].set_ylabel('training loss (mean over seeds)')
  caption(
      fig,
      'The rule (SPEC §8): the largest lr at which the loss falls in every seed at every epoch '
      "up to t*. Dashed: the lr fails it; x: the first epoch where a seed's loss rose.",
      y=0.0,
  )
  fig.tight_layout()
  return fig
