"""A small Vision Transformer (Dosovitskiy et al. 2021): patch embedding, a few pre-norm
attention blocks, mean pooling over tokens and the readout.

Inputs (B, H, W, C) are cut into non-overlapping p x p patches, each embedded by one dense
layer (a p x p stride-p convolution, as one matrix product), plus a learned position
embedding per patch. Every block is x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)),
with multi-head self-attention over the patches and an MLP of `mlp_ratio` x dim hidden units.
Layer norm acts on each token of each example alone, so nothing couples the examples (or the
seeds under vmap). Sows 'embed' (the tokens entering the first block), 'block_0', 'block_1',
... (each block's output tokens, (patches, dim) per example: flattened, or averaged over the
patches with --pooled) and 'pool' (the mean token, (dim,)).
"""

import dataclasses
import types

import flax.linen as nn
import jax
import jax.numpy as jnp

from manifold_dynamics.config import require, setting
from manifold_dynamics.engine import models
from manifold_dynamics.engine.models.layers import ACTIVATIONS, Dense, einsum
from manifold_dynamics.errors import UserError


class Attention(nn.Module):
  """Multi-head self-attention over the tokens of each example: (B, T, dim) -> (B, T, dim)."""

  heads: int
  init_scale: float = 1.0
  precision: str = 'float32'

  @nn.compact
  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    B, T, dim = x_BxTxD.shape
    head_dim = dim // self.heads
    dense = lambda name: Dense(dim, self.init_scale, precision=self.precision, name=name)
    split = lambda y: y.reshape(B, T, self.heads, head_dim)
    q, k, v = (split(dense(n)(x_BxTxD)) for n in ('query', 'key', 'value'))
    logits = einsum('bqhd,bkhd->bhqk', q, k, self.precision) / jnp.sqrt(head_dim)
    mixed = einsum('bhqk,bkhd->bqhd', jax.nn.softmax(logits, axis=-1), v, self.precision)
    return dense('out')(mixed.reshape(B, T, dim))


class ViT(nn.Module):
  """See the module docstring. Logits (B, num_outputs)."""

  patch: int = 4
  dim: int = 32
  depth: int = 2
  heads: int = 2
  mlp_ratio: int = 2
  activation: str = 'gelu'
  init_scale: float = 1.0
  num_outputs: int = 2
  precision: str = 'float32'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    B, H, W, C = x_BxHxWxC.shape
    p = self.patch
    if H % p or W % p:
      raise UserError(f'--vit_patch={p} must divide the image size {H}x{W}; choose a divisor.')
    act = ACTIVATIONS[self.activation]
    s, prec = self.init_scale, self.precision
    patches = x_BxHxWxC.reshape(B, H // p, p, W // p, p, C).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(B, (H // p) * (W // p), p * p * C)
    x = Dense(self.dim, s, precision=prec, name='patches')(patches)
    position = self.param('position', nn.initializers.normal(0.02), x.shape[1:])
    x = x + position[None]
    self.sow('intermediates', 'embed', x)
    for b in range(self.depth):
      x = x + Attention(self.heads, s, prec, name=f'attention_{b}')(
          nn.LayerNorm(name=f'norm_{b}a')(x)
      )
      y = nn.LayerNorm(name=f'norm_{b}b')(x)
      y = Dense(self.mlp_ratio * self.dim, s, precision=prec, name=f'mlp_{b}a')(y)
      x = x + Dense(self.dim, s, precision=prec, name=f'mlp_{b}b')(act(y))
      self.sow('intermediates', 'block', x)
    x = jnp.mean(nn.LayerNorm(name='norm_out')(x), axis=1)
    self.sow('intermediates', 'pool', x)
    return Dense(self.num_outputs, s, precision=prec, name='readout')(x)


@dataclasses.dataclass(frozen=True)
class Settings(models.Settings):
  """--model=vit: a small Vision Transformer."""

  flag_prefix = 'vit_'
  # A transformer's usual training: GELU in its MLPs, Adam (explicit flags win).
  defaults = types.MappingProxyType({'activation': 'gelu', 'optimizer': 'adam', 'lr': 0.001})

  patch: int = setting(4, 'Side of the square patches (it must divide the image size).')
  dim: int = setting(32, 'Width of the tokens.')
  depth: int = setting(2, 'Attention blocks.')
  heads: int = setting(2, 'Attention heads (they must divide --vit_dim).')
  mlp_ratio: int = setting(2, "Hidden units of each block's MLP, per token width.")

  def __post_init__(self):
    for name in ('patch', 'dim', 'depth', 'heads', 'mlp_ratio'):
      value = getattr(self, name)
      require(value > 0, f'--vit_{name} must be positive, got {value}.')
    require(
        self.dim % self.heads == 0,
        f'--vit_heads={self.heads} must divide --vit_dim={self.dim}.',
    )

  def label(self, cfg) -> str:
    return f'vit p{self.patch} {self.dim}x{self.depth} h{self.heads} {cfg.activation}'

  def build(self, cfg, num_classes: int) -> ViT:
    return ViT(
        self.patch,
        self.dim,
        self.depth,
        self.heads,
        self.mlp_ratio,
        cfg.activation,
        cfg.init_scale,
        num_classes,
        cfg.matmul_precision,
    )
