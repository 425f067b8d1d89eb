"""Fully connected networks as pure Flax Linen modules (SPEC §2).

`MLP(depth, width, activation)` maps inputs (..., N) to two logits (..., 2), one per label
a = +1 (class index 0, even digits) and a = -1 (class index 1, odd digits), and also returns
the first hidden layer's activations h (..., H), the internal representation whose geometry
the project studies, at every depth.

With `feature_major=True` the same network (same parameters) keeps its activations as
(features, batch) instead: logits (2, B), h (H, B). The training engine uses it: under vmap
over seeds the first layer is then one (S H, N) x (N, P) matrix product whose output is already
laid out seed by seed, so no (S, P, H) array is ever transposed.

Every matrix product runs at `precision` (MATMUL_PRECISIONS): 'float32' is full float32 on
every backend (TPUs and GPUs otherwise round float32 products to bfloat16 or TF32 by default);
'bfloat16' rounds both operands to bfloat16 and accumulates in float32, explicitly, so a CPU
computes what a TPU's MXU does and AMX, tensor cores and MXUs run it fast.
"""

from typing import Callable, Dict, NamedTuple, Optional, Sequence

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


MATMUL_PRECISIONS = ('float32', 'bfloat16')


def dot_general(
    a: jax.Array, b: jax.Array, contract: Sequence[int], precision: str = 'float32'
) -> jax.Array:
  """a and b contracted over axes contract = (axis of a, axis of b), at `precision`."""
  dims = (((contract[0],), (contract[1],)), ((), ()))
  if precision == 'bfloat16':
    return jax.lax.dot_general(
        a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), dims, preferred_element_type=jnp.float32
    )
  return jax.lax.dot_general(a, b, dims, precision=jax.lax.Precision.HIGHEST)


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
  one operand of one large matrix product under vmap, whatever each run's statistics. With
  `columns` x holds only those input columns (the others have scale 0: they contribute nothing
  and are left out of the product, exactly); the kernel keeps all N rows.

  Inputs are (B, N), or (N, B) with `feature_major` and `x_feature_major` left at None;
  outputs are (B, F), or (F, B) with `feature_major`.
  """

  features: int
  init_scale: float = 1.0
  feature_major: bool = False
  precision: str = 'float32'

  @nn.compact
  def __call__(
      self,
      x: jax.Array,
      standardiser: Optional[Standardiser] = None,
      columns: Optional[jax.Array] = None,
      x_feature_major: Optional[bool] = None,
  ):
    x_feature_major = self.feature_major if x_feature_major is None else x_feature_major
    fan_in = x.shape[0 if x_feature_major else -1]
    if standardiser is not None:  # the full input width, whatever columns x holds
      fan_in = standardiser.shift_N.shape[-1]
    init = fan_in_uniform(self.init_scale, fan_in)
    kernel_NxF = self.param('kernel', init, (fan_in, self.features))
    bias_F = self.param('bias', init, (self.features,))
    if standardiser is not None:
      shift_N, scale_N = standardiser
      bias_F = bias_F - dot_general(shift_N * scale_N, kernel_NxF, (0, 0), self.precision)
      kernel_NxF = scale_N[:, None] * kernel_NxF
    if columns is not None:
      kernel_NxF = kernel_NxF[columns]
    x_axis = 0 if x_feature_major else x.ndim - 1
    if self.feature_major:  # (F, B) = W^T x^T
      return dot_general(kernel_NxF, x, (0, x_axis), self.precision) + bias_F[:, None]
    y = dot_general(x, kernel_NxF, (x_axis, 0), self.precision)
    return y + jnp.reshape(bias_F, (1,) * (y.ndim - 1) + (-1,))


class MLP(nn.Module):
  """N -> H -> ... -> H -> 2 network with `depth` weight layers.

  Returns (logits (..., 2), h (..., H)) where h is the first hidden layer's activation, or
  (2, B) and (H, B) with `feature_major` (inputs are (B, N) either way). The optional
  `standardiser` standardises the inputs inside the first layer, and `columns` says which
  input columns x holds (see `Dense`). Every
  hidden layer's activation is also sown into the 'intermediates' collection ('hidden', in
  order), read when the observables of every layer are asked for (apply with
  mutable=['intermediates']); otherwise sowing costs nothing. Every layer's pre-activation
  goes through `perturb` (see `perturbation_names`): the gradient of a loss with respect to
  zero perturbations is the back-propagated error of each layer, per example (GraNd,
  `difficulty.py`); without the collection it changes nothing.
  """

  depth: int = 2
  width: int = 20
  activation: str = 'tanh'
  init_scale: float = 1.0
  feature_major: bool = False
  precision: str = 'float32'

  @nn.compact
  def __call__(
      self,
      x_BxN: jax.Array,
      standardiser: Optional[Standardiser] = None,
      columns: Optional[jax.Array] = None,
  ):
    act = ACTIVATIONS[self.activation]
    dense = lambda features, name: Dense(
        features, self.init_scale, self.feature_major, self.precision, name=name
    )

    # Zero perturbations of the pre-activations, only when the caller passes them (per-example
    # gradients, `perturbation_names`); never created by init, so variables stay {'params'}.
    def pre(name, z):
      key = PERTURBATION + name
      return self.perturb(key, z) if self.has_variable('perturbations', key) else z

    first = dense(self.width, 'hidden_0')(x_BxN, standardiser, columns, x_feature_major=False)
    h = act(pre('hidden_0', first))
    self.sow('intermediates', 'hidden', h)
    z = h
    for layer in range(1, self.depth - 1):
      z = act(pre(f'hidden_{layer}', dense(self.width, f'hidden_{layer}')(z)))
      self.sow('intermediates', 'hidden', z)
    return pre('readout', dense(2, 'readout')(z)), h


PERTURBATION = 'dz_'  # prefix of the perturbation of each layer's pre-activation


def perturbation_names(depth: int):
  """Layer names of an `MLP` of `depth` weight layers, input side first; its 'perturbations'
  collection holds PERTURBATION + name for each, shaped like that layer's pre-activation."""
  return [f'hidden_{layer}' for layer in range(depth - 1)] + ['readout']
