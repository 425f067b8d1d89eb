"""A small ConvNet (SPEC §8): blocks of 3x3 conv, activation and 2x2 average pooling, then a
hidden dense layer and the readout."""

import dataclasses
from typing import Tuple

import flax.linen as nn
import jax

from manifold_dynamics.config import require, setting
from manifold_dynamics.engine import models
from manifold_dynamics.engine.models.layers import ACTIVATIONS, CONV_IMPLS, Conv, Dense
from manifold_dynamics.errors import UserError


class CNN(nn.Module):
  """Inputs (B, H, W, C), logits (B, num_outputs). Sows 'conv_0', 'conv_1', ... (each block's
  activation, before pooling) and 'dense_0'."""

  channels: Tuple[int, ...] = (16, 32)
  width: int = 20
  activation: str = 'tanh'
  init_scale: float = 1.0
  num_outputs: int = 2
  conv_impl: str = 'auto'  # Conv.impl
  precision: str = 'float32'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    s, p = self.init_scale, self.precision
    x = x_BxHxWxC
    for i, c in enumerate(self.channels):
      x = act(Conv(c, s, impl=self.conv_impl, precision=p, name=f'Conv_{i}')(x))
      self.sow('intermediates', f'conv_{i}', x)
      x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding='SAME')
    x = x.reshape((x.shape[0], -1))
    x = act(Dense(self.width, s, precision=p, name='Dense_0')(x))
    self.sow('intermediates', 'dense_0', x)
    return Dense(self.num_outputs, s, precision=p, name='readout')(x)


@dataclasses.dataclass(frozen=True)
class Settings(models.Settings):
  """--model=cnn: 3x3 conv blocks (conv, activation, 2x2 average pool), then a dense layer."""

  flag_prefix = 'cnn_'

  channels: Tuple[int, ...] = setting((16, 32), 'Channels of each 3x3 conv block.')
  width: int = setting(20, 'Units of the dense layer on top of the conv blocks.')
  conv_impl: str = setting(
      'auto',
      "Convolution: xla (XLA's), shifted (a sum of k^2 matrix products, fast inside scans on "
      'a CPU), im2col (one product of the k^2 windows: faster still, k^2 times the memory), '
      "patches (JAX's patch extraction, then one product) or auto (shifted on a CPU, xla "
      'elsewhere).',
      lambda: CONV_IMPLS,
  )

  def __post_init__(self):
    try:
      channels = (self.channels,) if isinstance(self.channels, int) else self.channels
      object.__setattr__(self, 'channels', tuple(int(c) for c in channels))
    except ValueError:
      raise UserError(
          f'--cnn_channels takes comma-separated integers, got {self.channels}.'
      ) from None
    require(
        len(self.channels) > 0 and all(c > 0 for c in self.channels),
        f'--cnn_channels must be positive integers, got {self.channels}.',
    )
    require(self.width > 0, f'--cnn_width must be positive, got {self.width}.')
    require(
        self.conv_impl in CONV_IMPLS,
        f'--cnn_conv_impl must be one of {", ".join(CONV_IMPLS)}, got {self.conv_impl!r}.',
    )

  def label(self, cfg) -> str:
    return f'cnn {"-".join(map(str, self.channels))}/{self.width} {cfg.activation}'

  def build(self, cfg, num_classes: int) -> CNN:
    return CNN(
        self.channels,
        self.width,
        cfg.activation,
        cfg.init_scale,
        num_classes,
        self.conv_impl,
        cfg.matmul_precision,
    )
