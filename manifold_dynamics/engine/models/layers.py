"""The layers every model of this package is built from: the paper's (PyTorch's) fan-in
uniform initialisation, and matrix products and convolutions at a chosen precision.

Every layer initialises each weight and bias from U(-s/sqrt(fan_in), s/sqrt(fan_in)), s =
init_scale, and runs its products at `precision` (MATMUL_PRECISIONS): 'float32' is full
float32 on every backend (TPUs and GPUs otherwise round float32 products to bfloat16 or TF32
by default); 'bfloat16' rounds both operands to bfloat16 and accumulates in float32,
explicitly, so a CPU computes what a TPU's MXU does, and AMX, tensor cores and MXUs run it
fast. A model of one's own built from `Dense` and `Conv` gets both for free.
"""

import math
from typing import Callable, Dict, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from manifold_dynamics.engine.state import Standardiser

ACTIVATIONS: Dict[str, Callable[[jax.Array], jax.Array]] = {
    'tanh': jnp.tanh,
    'relu': jax.nn.relu,
    'leaky_relu': lambda x: jax.nn.leaky_relu(x, negative_slope=0.1),
    'silu': jax.nn.silu,
    'gelu': jax.nn.gelu,
    'identity': lambda x: x,
}

MATMUL_PRECISIONS = ('float32', 'bfloat16')
CONV_IMPLS = ('auto', 'xla', 'shifted', 'im2col', 'patches')


def _operands(precision: str, *xs):
  """The operands of a product at `precision`, and the keyword arguments of the lax call."""
  if precision == 'bfloat16':
    return [x.astype(jnp.bfloat16) for x in xs], dict(preferred_element_type=jnp.float32)
  return list(xs), dict(precision=jax.lax.Precision.HIGHEST)


def dot_general(
    a: jax.Array, b: jax.Array, contract: Sequence[int], precision: str = 'float32'
) -> jax.Array:
  """a and b contracted over axes contract = (axis of a, axis of b), at `precision`."""
  dims = (((contract[0],), (contract[1],)), ((), ()))
  (a, b), kwargs = _operands(precision, a, b)
  return jax.lax.dot_general(a, b, dims, **kwargs)


def einsum(spec: str, a: jax.Array, b: jax.Array, precision: str = 'float32') -> jax.Array:
  """`jnp.einsum(spec, a, b)` at `precision` (batched contractions: attention)."""
  (a, b), kwargs = _operands(precision, a, b)
  return jnp.einsum(spec, a, b, **kwargs)


def fan_in_uniform(scale: float, fan_in: int):
  """Initialiser drawing i.i.d. from U(-scale/sqrt(fan_in), scale/sqrt(fan_in)).

  With scale = 1 this is PyTorch's nn.Linear default, for weights and biases alike.
  """
  bound = scale / jnp.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

  return init


class Dense(nn.Module):
  """Affine layer whose weights and bias share the fan-in uniform initialisation.

  With a `Standardiser` the layer computes ((x - shift) * scale) @ W + b as
  x @ (scale * W) + (b - (shift * scale) @ W): the raw inputs x, shared by every seed, stay
  one operand of one large matrix product under vmap, whatever each run's statistics. With
  `columns` x holds only those input columns (the others have scale 0: they contribute nothing
  and are left out of the product, exactly); the kernel keeps all N rows.

  Inputs are (..., N), or (N, B) with `feature_major` and `x_feature_major` left at None;
  outputs are (..., F), or (F, B) with `feature_major`.
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


def shifted_conv(
    x_BxHxWxC: jax.Array, kernel: jax.Array, strides: int, precision: str = 'float32'
) -> jax.Array:
  """A 'SAME' convolution as a sum over the k x k kernel offsets of (strided) slices of the
  padded input times that offset's (C_in, C_out) matrix: matrix products and slices only.
  Equal to `lax.conv_general_dilated` up to float rounding, and as fast on a CPU, where XLA's
  own convolution runs about ten times slower inside a loop (a scan over epochs or batches;
  jax-ml/jax#12868) than outside one. Memory is that of the input (no k^2 patches)."""
  k = kernel.shape[0]
  x, out = _same_padded(x_BxHxWxC, k, strides)
  y = 0.0
  for i in range(k):
    for j in range(k):
      window = x[
          :,
          i : i + (out[0] - 1) * strides + 1 : strides,
          j : j + (out[1] - 1) * strides + 1 : strides,
          :,
      ]
      y = y + dot_general(window, kernel[i, j], (3, 0), precision)
  return y


def _same_padded(x_BxHxWxC: jax.Array, k: int, strides: int):
  """The input padded for a 'SAME' k x k convolution, and the output's spatial size."""
  sizes = x_BxHxWxC.shape[1:3]
  out = [-(-n // strides) for n in sizes]
  pads = [max((o - 1) * strides + k - n, 0) for o, n in zip(out, sizes)]
  x = jnp.pad(x_BxHxWxC, ((0, 0),) + tuple((p // 2, p - p // 2) for p in pads) + ((0, 0),))
  return x, out


def im2col_conv(
    x_BxHxWxC: jax.Array, kernel: jax.Array, strides: int, precision: str = 'float32'
) -> jax.Array:
  """A 'SAME' convolution as one matrix product: the k x k windows of the padded input, cut
  by slices and laid side by side (B, H', W', k^2 C), times the kernel as a (k^2 C, C_out)
  matrix. Equal to `lax.conv_general_dilated` up to float rounding; inside a scan on a CPU
  it runs like the convolution outside one, and about 1.3 times faster than `shifted_conv`
  for the grid's CNN (benchmarks/throughput.py), at k^2 times the input's memory."""
  k = kernel.shape[0]
  x, out = _same_padded(x_BxHxWxC, k, strides)
  windows = [
      x[
          :,
          i : i + (out[0] - 1) * strides + 1 : strides,
          j : j + (out[1] - 1) * strides + 1 : strides,
      ]
      for i in range(k)
      for j in range(k)
  ]
  patches = jnp.concatenate(windows, axis=-1)  # (B, H', W', k k C): offset-major, then channel
  return dot_general(patches, kernel.reshape(-1, kernel.shape[-1]), (3, 0), precision)


def patches_conv(
    x_BxHxWxC: jax.Array, kernel: jax.Array, strides: int, precision: str = 'float32'
) -> jax.Array:
  """A 'SAME' convolution as JAX's own patch extraction (`lax.conv_general_dilated_patches`,
  itself a grouped convolution) followed by one matrix product."""
  k, channels = kernel.shape[0], kernel.shape[2]
  patches = jax.lax.conv_general_dilated_patches(
      x_BxHxWxC,
      (k, k),
      (strides, strides),
      'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      precision=jax.lax.Precision.HIGHEST,
  )  # channel-major, then the k x k offsets
  kernel_CKxO = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(channels * k * k, -1)
  return dot_general(patches, kernel_CKxO, (3, 0), precision)


def xla_conv(
    x_BxHxWxC: jax.Array, kernel: jax.Array, strides: int, precision: str = 'float32'
) -> jax.Array:
  """XLA's 'SAME' convolution (NHWC inputs, HWIO kernel) at `precision`."""
  (x, kernel), kwargs = _operands(precision, x_BxHxWxC, kernel)
  return jax.lax.conv_general_dilated(
      x,
      kernel,
      (strides, strides),
      'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      **kwargs,
  )


CONVS = {'xla': xla_conv, 'shifted': shifted_conv, 'im2col': im2col_conv, 'patches': patches_conv}


class Conv(nn.Module):
  """A 'SAME' k x k convolution of NHWC inputs whose kernel and bias are U(-s/sqrt(fan_in),
  s/sqrt(fan_in)), fan_in = k^2 x input channels (PyTorch's default), with products at
  `precision`. `impl` names one of CONVS ('xla': XLA's convolution; 'shifted': the
  `shifted_conv` sum; 'im2col': one product of the windows; 'patches': JAX's patch extraction
  and one product), 'auto' is 'shifted' on a CPU and 'xla' elsewhere."""

  features: int
  init_scale: float = 1.0
  kernel: int = 3
  strides: int = 1
  impl: str = 'auto'
  precision: str = 'float32'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    channels = x_BxHxWxC.shape[-1]
    init = fan_in_uniform(self.init_scale, self.kernel * self.kernel * channels)
    kernel = self.param('kernel', init, (self.kernel, self.kernel, channels, self.features))
    bias = self.param('bias', init, (self.features,))
    impl = self.impl
    if impl == 'auto':
      impl = 'shifted' if jax.default_backend() == 'cpu' else 'xla'
    y = CONVS[impl](x_BxHxWxC, kernel, self.strides, self.precision)
    return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


def count_params(module: nn.Module, input_shape: Sequence[int]) -> int:
  """Trainable parameters of `module` on inputs of `input_shape` (one example), from the
  shapes of `jax.eval_shape(module.init, ...)`: nothing is allocated or computed."""
  shapes = jax.eval_shape(
      module.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  )
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes['params']))
