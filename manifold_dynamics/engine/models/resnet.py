"""A narrow ResNet without batch norm (SPEC §8): no statistic couples the examples, so the
seeds stay independent under vmap."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from manifold_dynamics.config import require, setting
from manifold_dynamics.engine import models
from manifold_dynamics.engine.models.layers import ACTIVATIONS, CONV_IMPLS, Conv, Dense


class ResNet(nn.Module):
  """A 3x3 stem, three stages of `blocks` residual blocks (two 3x3 convs; widths width,
  2 width, 4 width; stride 2 entering stages 2 and 3, with a 1x1 projection on the skip),
  global average pooling and the readout. blocks = 1 is ResNet-8, 3 is ResNet-20. Sows 'stem',
  'stage{s}_block{b}' (each block's output) and 'pool'."""

  width: int = 16
  blocks: int = 1
  activation: str = 'tanh'
  init_scale: float = 1.0
  num_outputs: int = 2
  conv_impl: str = 'auto'  # Conv.impl
  precision: str = 'float32'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    s = self.init_scale
    conv = lambda *a, **k: Conv(*a, impl=self.conv_impl, precision=self.precision, **k)
    x = act(conv(self.width, s, name='Stem')(x_BxHxWxC))
    self.sow('intermediates', 'stem', x)
    for stage in range(3):
      features = self.width * 2**stage
      for b in range(self.blocks):
        name, strides = f'stage{stage}_block{b}', 2 if stage > 0 and b == 0 else 1
        y = act(conv(features, s, strides=strides, name=f'{name}_a')(x))
        y = conv(features, s, name=f'{name}_b')(y)
        if strides != 1 or x.shape[-1] != features:
          x = conv(features, s, kernel=1, strides=strides, name=f'{name}_skip')(x)
        x = act(x + y)
        self.sow('intermediates', name, x)
    x = jnp.mean(x, axis=(1, 2))
    self.sow('intermediates', 'pool', x)
    return Dense(self.num_outputs, s, precision=self.precision, name='readout')(x)


@dataclasses.dataclass(frozen=True)
class Settings(models.Settings):
  """--model=resnet: a narrow ResNet, no normalisation."""

  flag_prefix = 'resnet_'

  width: int = setting(16, 'Channels of the first stage (doubled at each of the three).')
  blocks: int = setting(1, 'Residual blocks per stage (1 = ResNet-8, 3 = ResNet-20).')
  conv_impl: str = setting(
      'auto',
      'Convolution: xla, shifted, im2col, patches or auto (as --cnn_conv_impl).',
      lambda: CONV_IMPLS,
  )

  def __post_init__(self):
    require(self.width > 0, f'--resnet_width must be positive, got {self.width}.')
    require(self.blocks > 0, f'--resnet_blocks must be positive, got {self.blocks}.')
    require(
        self.conv_impl in CONV_IMPLS,
        f'--resnet_conv_impl must be one of {", ".join(CONV_IMPLS)}, got {self.conv_impl!r}.',
    )

  def label(self, cfg) -> str:
    return f'resnet{2 + 6 * self.blocks} w{self.width} {cfg.activation}'

  def build(self, cfg, num_classes: int) -> ResNet:
    return ResNet(
        self.width,
        self.blocks,
        cfg.activation,
        cfg.init_scale,
        num_classes,
        self.conv_impl,
        cfg.matmul_precision,
    )
