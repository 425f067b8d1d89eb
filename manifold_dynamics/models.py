"""Fully connected networks as pure Flax Linen modules (SPEC §2).

`MLP(depth, width, activation)` maps inputs (..., N) to two logits (..., 2), one per label
a = +1 (class index 0, even digits) and a = -1 (class index 1, odd digits), and also returns
the first hidden layer's activations h (..., H), the internal representation whose geometry
the project studies, at every depth.
"""

from typing import Callable, Dict, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: Dict[str, Callable[[jax.Array], jax.Array]] = {
    'tanh': jnp.tanh,
    'relu': jax.nn.relu,
    'leaky_relu': lambda x: jax.nn.leaky_relu(x, negative_slope=0.1),
    'silu': jax.nn.silu,
    'identity': lambda x: x,
}


def fan_in_uniform(scale: float, fan_in: int):
  """Initialiser drawing i.i.d. from U(-scale/sqrt(fan_in), scale/sqrt(fan_in)).

  With scale = 1 this is PyTorch's nn.Linear default, for weights and biases alike.
  """
  bound = scale / jnp.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

  return init


class Standardiser(NamedTuple):
  """Per-input affine map x -> (x - shift) * scale (SPEC §1 standardisation)."""

  shift_N: jax.Array  # per-pixel mean of the training set
  scale_N: jax.Array  # 1 / std, 0 for pixels constant on the training set


class Dense(nn.Module):
  """Affine layer whose weights and bias share the fan-in uniform initialisation.

  With a `Standardiser` the layer computes ((x - shift) * scale) @ W + b as
  x @ (scale * W) + (b - (shift * scale) @ W): the raw inputs x, shared by every seed, stay
  the left operand of one large matrix product under vmap, whatever each run's statistics.
  """

  features: int
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x_BxN: jax.Array, standardiser: Optional[Standardiser] = None):
    fan_in = x_BxN.shape[-1]
    init = fan_in_uniform(self.init_scale, fan_in)
    kernel_NxF = self.param('kernel', init, (fan_in, self.features))
    bias_F = self.param('bias', init, (self.features,))
    if standardiser is not None:
      shift_N, scale_N = standardiser
      bias_F = bias_F - (shift_N * scale_N) @ kernel_NxF
      kernel_NxF = scale_N[:, None] * kernel_NxF
    y_BxF = x_BxN @ kernel_NxF
    return y_BxF + jnp.reshape(bias_F, (1,) * (y_BxF.ndim - 1) + (-1,))


class MLP(nn.Module):
  """N -> H -> ... -> H -> 2 network with `depth` weight layers.

  Returns (logits (..., 2), h (..., H)) where h is the first hidden layer's activation. The
  optional `standardiser` standardises the inputs inside the first layer (see `Dense`). Every
  hidden layer's activation is also sown into the 'intermediates' collection ('hidden', in
  order), read when the observables of every layer are asked for (apply with
  mutable=['intermediates']); otherwise sowing costs nothing.
  """

  depth: int = 2
  width: int = 20
  activation: str = 'tanh'
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x_BxN: jax.Array, standardiser: Optional[Standardiser] = None):
    act = ACTIVATIONS[self.activation]
    h_BxH = act(Dense(self.width, self.init_scale, name='hidden_0')(x_BxN, standardiser))
    self.sow('intermediates', 'hidden', h_BxH)
    z = h_BxH
    for layer in range(1, self.depth - 1):
      z = act(Dense(self.width, self.init_scale, name=f'hidden_{layer}')(z))
      self.sow('intermediates', 'hidden', z)
    logits_Bx2 = Dense(2, self.init_scale, name='readout')(z)
    return logits_Bx2, h_BxH
