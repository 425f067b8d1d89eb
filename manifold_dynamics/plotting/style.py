"""The look every figure shares: colours and labels of the curves, matplotlib settings, the
caption under a figure, and `save` (PNG and PDF, atomically)."""

import os
from typing import List

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np

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


def caption(fig, text: str, y: float = -0.02, wrap: bool = True):
  """A figure's caption: small grey text centred below the axes (`y` in figure coordinates)."""
  fig.text(0.5, y, text, ha='center', va='top', fontsize=7.5, color='0.3', wrap=wrap)
