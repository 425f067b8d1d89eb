"""The models, as pure Flax Linen modules: the paper's MLP (SPEC §2), a small ConvNet and a
narrow ResNet (SPEC §8), chosen by name from MODELS.

The model contract (`contract.py`): a model maps a batch of inputs (B, ...) to K logits (B, K)
and `sow`s into 'intermediates' the representations it offers to measure, one name per layer.
Every model here initialises each weight and bias from U(-s/sqrt(fan_in), s/sqrt(fan_in)), the
paper's (PyTorch's) default, with s = init_scale.

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

import math
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

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
  (2, B) and (H, B) with `feature_major` (inputs are (B, N) either way); with `logits_only`
  (the model contract, `contract.py`) the logits (..., num_outputs) alone. The optional
  `standardiser` standardises the inputs inside the first layer, and `columns` says which
  input columns x holds (see `Dense`). Every
  hidden layer's activation is also sown into the 'intermediates' collection ('hidden', in
  order: layers 'hidden' at depth 2, else 'hidden_0', 'hidden_1', ... for `contract.py`),
  read when the observables of every layer are asked for (apply with
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
  num_outputs: int = 2
  logits_only: bool = False

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

    if self.logits_only:  # the model contract: inputs of any shape, flattened per example
      x_BxN = x_BxN.reshape((x_BxN.shape[0], -1))
    first = dense(self.width, 'hidden_0')(x_BxN, standardiser, columns, x_feature_major=False)
    h = act(pre('hidden_0', first))
    self.sow('intermediates', 'hidden', h)
    z = h
    for layer in range(1, self.depth - 1):
      z = act(pre(f'hidden_{layer}', dense(self.width, f'hidden_{layer}')(z)))
      self.sow('intermediates', 'hidden', z)
    logits = pre('readout', dense(self.num_outputs, 'readout')(z))
    return logits if self.logits_only else (logits, h)


CONV_IMPLS = ('auto', 'xla', 'shifted')


def shifted_conv(x_BxHxWxC: jax.Array, kernel: jax.Array, strides: int) -> jax.Array:
  """A 'SAME' convolution as a sum over the k x k kernel offsets of (strided) slices of the
  padded input times that offset's (C_in, C_out) matrix: matrix products and slices only.
  Equal to `lax.conv_general_dilated` up to float rounding, and as fast on a CPU, where XLA's
  own convolution runs about ten times slower inside a loop (a scan over epochs or batches;
  jax-ml/jax#12868) than outside one. Memory is that of the input (no k^2 patches)."""
  k = kernel.shape[0]
  sizes = x_BxHxWxC.shape[1:3]
  out = [-(-n // strides) for n in sizes]
  pads = [max((o - 1) * strides + k - n, 0) for o, n in zip(out, sizes)]
  x = jnp.pad(x_BxHxWxC, ((0, 0),) + tuple((p // 2, p - p // 2) for p in pads) + ((0, 0),))
  y = 0.0
  for i in range(k):
    for j in range(k):
      window = x[
          :,
          i : i + (out[0] - 1) * strides + 1 : strides,
          j : j + (out[1] - 1) * strides + 1 : strides,
          :,
      ]
      y = y + jax.lax.dot_general(
          window, kernel[i, j], (((3,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST
      )
  return y


class Conv(nn.Module):
  """A 'SAME' k x k convolution of NHWC inputs whose kernel and bias are U(-s/sqrt(fan_in),
  s/sqrt(fan_in)), fan_in = k^2 x input channels (PyTorch's default), computed with full
  float32 products on every backend. `impl` 'xla' is XLA's convolution, 'shifted' the
  `shifted_conv` sum, 'auto' the second on a CPU and the first elsewhere."""

  features: int
  init_scale: float = 1.0
  kernel: int = 3
  strides: int = 1
  impl: str = 'auto'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    channels = x_BxHxWxC.shape[-1]
    init = fan_in_uniform(self.init_scale, self.kernel * self.kernel * channels)
    kernel = self.param('kernel', init, (self.kernel, self.kernel, channels, self.features))
    bias = self.param('bias', init, (self.features,))
    impl = self.impl
    if impl == 'auto':
      impl = 'shifted' if jax.default_backend() == 'cpu' else 'xla'
    if impl == 'shifted':
      y = shifted_conv(x_BxHxWxC, kernel, self.strides)
    else:
      y = jax.lax.conv_general_dilated(
          x_BxHxWxC,
          kernel,
          (self.strides, self.strides),
          'SAME',
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
          precision=jax.lax.Precision.HIGHEST,
      )
    return y + bias.reshape((1,) * (y.ndim - 1) + (-1,))


class CNN(nn.Module):
  """A small ConvNet: blocks of 3x3 conv, activation and 2x2 average pooling, then a hidden
  dense layer and the readout. Inputs (B, H, W, C), logits (B, num_outputs). Sows 'conv_0',
  'conv_1', ... (each block's activation, before pooling) and 'dense_0'."""

  channels: Tuple[int, ...] = (16, 32)
  width: int = 20
  activation: str = 'tanh'
  init_scale: float = 1.0
  num_outputs: int = 2
  conv_impl: str = 'auto'  # Conv.impl

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    x = x_BxHxWxC
    for i, c in enumerate(self.channels):
      x = act(Conv(c, self.init_scale, impl=self.conv_impl, name=f'Conv_{i}')(x))
      self.sow('intermediates', f'conv_{i}', x)
      x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding='SAME')
    x = x.reshape((x.shape[0], -1))
    x = act(Dense(self.width, self.init_scale, name='Dense_0')(x))
    self.sow('intermediates', 'dense_0', x)
    return Dense(self.num_outputs, self.init_scale, name='readout')(x)


class ResNet(nn.Module):
  """A narrow ResNet without batch norm (no statistic couples the examples, so seeds stay
  independent under vmap): a 3x3 stem, three stages of `blocks` residual blocks (two 3x3
  convs; widths width, 2 width, 4 width; stride 2 entering stages 2 and 3, with a 1x1
  projection on the skip), global average pooling and the readout. blocks = 1 is ResNet-8,
  3 is ResNet-20. Sows 'stem', 'stage{s}_block{b}' (each block's output) and 'pool'."""

  width: int = 16
  blocks: int = 1
  activation: str = 'tanh'
  init_scale: float = 1.0
  num_outputs: int = 2
  conv_impl: str = 'auto'  # Conv.impl

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    s = self.init_scale
    conv = lambda *a, **k: Conv(*a, impl=self.conv_impl, **k)
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
    return Dense(self.num_outputs, s, name='readout')(x)


# Models by name: each builds its module from a TrainConfig (its own size fields) and K.
MODELS: Dict[str, Callable[..., nn.Module]] = {
    'mlp': lambda cfg, k: MLP(
        cfg.depth, cfg.width, cfg.activation, cfg.init_scale, num_outputs=k, logits_only=True
    ),
    'cnn': lambda cfg, k: CNN(cfg.cnn_channels, cfg.width, cfg.activation, cfg.init_scale, k),
    'resnet': lambda cfg, k: ResNet(
        cfg.resnet_width, cfg.resnet_blocks, cfg.activation, cfg.init_scale, k
    ),
}


PERTURBATION = 'dz_'  # prefix of the perturbation of each layer's pre-activation


def perturbation_names(depth: int):
  """Layer names of an `MLP` of `depth` weight layers, input side first; its 'perturbations'
  collection holds PERTURBATION + name for each, shaped like that layer's pre-activation."""
  return [f'hidden_{layer}' for layer in range(depth - 1)] + ['readout']


def count_params(module: nn.Module, input_shape: Sequence[int]) -> int:
  """Trainable parameters of `module` on inputs of `input_shape` (one example), from the
  shapes of `jax.eval_shape(module.init, ...)`: nothing is allocated or computed."""
  shapes = jax.eval_shape(
      module.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  )
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes['params']))
