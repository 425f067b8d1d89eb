"""The paper's network (SPEC §2): a fully connected N -> H -> ... -> H -> K net, and its fast
network for the paper's own setting.

`MLP(depth, width, activation)` maps inputs (..., N) to two logits (..., 2), one per label
a = +1 (class index 0, even digits) and a = -1 (class index 1, odd digits), and also returns
the first hidden layer's activations h (..., H), the internal representation whose geometry
the project studies, at every depth. With `logits_only` (the model contract) it returns the
K logits alone, from inputs of any shape, flattened per example.

`FusedMLP` is how the engine trains it on a binary task in full batch, behind the contract
(`contract.Network`): the same network and parameters, with
- activations kept feature-major, (H, P) per seed: under vmap over seeds the first layer is
  one (S H, N) x (N, P) matrix product whose output is already laid out seed by seed, so no
  (S, P, H) array is ever transposed;
- the standardiser folded into the first layer's weights (`layers.Dense`), so the raw inputs,
  shared by every seed, stay one operand whatever each run's statistics (pruned sets);
- the inputs that no run uses (constant on T) left out of every product;
- with bfloat16 products, the inputs stored in bfloat16 once (every product rounds them);
- GraNd exact and cheap: sum over layers of (||input||^2 + 1) ||back-propagated error||^2.
"""

import dataclasses
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from manifold_dynamics.config import require, setting
from manifold_dynamics.engine import contract, difficulty, models
from manifold_dynamics.engine.models.layers import ACTIVATIONS, Dense
from manifold_dynamics.engine.state import Standardiser, TrainData, targets

PERTURBATION = 'dz_'  # prefix of the perturbation of each layer's pre-activation


def perturbation_names(depth: int):
  """Layer names of an `MLP` of `depth` weight layers, input side first; its 'perturbations'
  collection holds PERTURBATION + name for each, shaped like that layer's pre-activation."""
  return [f'hidden_{layer}' for layer in range(depth - 1)] + ['readout']


class MLP(nn.Module):
  """N -> H -> ... -> H -> 2 network with `depth` weight layers.

  Returns (logits (..., 2), h (..., H)) where h is the first hidden layer's activation, or
  (2, B) and (H, B) with `feature_major` (inputs are (B, N) either way); with `logits_only`
  (the model contract) the logits (..., num_outputs) alone. The optional `standardiser`
  standardises the inputs inside the first layer, and `columns` says which input columns x
  holds (see `layers.Dense`). Every hidden layer's activation is also sown into the
  'intermediates' collection ('hidden', in order: layers 'hidden' at depth 2, else
  'hidden_0', 'hidden_1', ...), read when the observables of every layer are asked for (apply
  with mutable=['intermediates']); otherwise sowing costs nothing. Every layer's
  pre-activation goes through `perturb` (see `perturbation_names`): the gradient of a loss
  with respect to zero perturbations is the back-propagated error of each layer, per example
  (GraNd); without the collection it changes nothing.
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


@dataclasses.dataclass(frozen=True)
class Settings(models.Settings):
  """--model=mlp: the paper's fully connected network."""

  depth: int = setting(2, 'L, weight layers (2 = one hidden layer).')
  width: int = setting(20, 'H, units per hidden layer.')

  def __post_init__(self):
    require(
        self.depth >= 2,
        f'--depth must be >= 2 (the representation is the first hidden layer), got {self.depth}.',
    )
    require(self.width > 0, f'--width must be positive, got {self.width}.')

  def label(self, cfg) -> str:
    return f'{self.depth}x{self.width} {cfg.activation}'

  def workdir_name(self, cfg) -> str:
    return f'L{self.depth}xH{self.width}'

  def build(self, cfg, num_classes: int) -> MLP:
    return MLP(
        self.depth,
        self.width,
        cfg.activation,
        cfg.init_scale,
        precision=cfg.matmul_precision,
        num_outputs=num_classes,
        logits_only=True,
    )

  def network(self, cfg, data: TrainData) -> Optional['FusedMLP']:
    """The fused network on the paper's setting: a binary task in full batch, measuring the
    first or every hidden layer."""
    full_batch = cfg.batch_size is None or cfg.batch_size >= data.num_examples
    if data.num_classes == 2 and full_batch and cfg.layers in ('first', 'all'):
      return FusedMLP(cfg, self, data.shape_of_input)
    return None


class FusedMLP(contract.Network):
  """The MLP on a binary full-batch task (module docstring), feature-major."""

  class_axis = 0
  feature_axis = 0

  def __init__(self, cfg, settings: Settings, input_shape):
    self.settings = settings
    depth = settings.depth
    names = ['hidden'] if depth == 2 else [f'hidden_{k}' for k in range(depth - 1)]
    super().__init__(cfg, 2, input_shape, names if cfg.layers == 'all' else names[:1])
    self.num_inputs = math.prod(self.input_shape)
    self.model = MLP(
        depth,
        settings.width,
        cfg.activation,
        cfg.init_scale,
        feature_major=True,
        precision=cfg.matmul_precision,
    )

  def init(self, key):
    return self.model.init(key, jnp.zeros((1, self.num_inputs), jnp.float32))['params']

  def _apply(self, params, standardiser, data, x, **kwargs):
    return self.model.apply({'params': params}, x, standardiser, data.columns, **kwargs)

  def forward(self, params, standardiser, data, x, capture):
    """Logits (2, B); with capture h (H, B) of the first hidden layer in a list, or with
    cfg.layers == 'all' every hidden layer stacked (L - 1, H, B), the first one first."""
    if capture and self.cfg.layers == 'all':
      (logits_2xB, _), sown = self._apply(params, standardiser, data, x, mutable=['intermediates'])
      return logits_2xB, jnp.stack(sown['intermediates']['hidden'])
    logits_2xB, h = self._apply(params, standardiser, data, x)
    return logits_2xB, [h] if capture else []

  def predict(self, params, standardiser, data, x):
    """The logits (2, B) of all of x in one product: the MLP's activations are small."""
    return self._apply(params, standardiser, data, x)[0]

  def logits(self, params, x_BxN):
    mlp = MLP(self.settings.depth, self.settings.width, self.cfg.activation, self.cfg.init_scale)
    return mlp.apply({'params': params}, x_BxN)[0]

  def prepare(self, data: TrainData, stats: Standardiser) -> TrainData:
    """The inputs that no run uses left out (`TrainData.without_constant_inputs`), and with
    bfloat16 products stored in bfloat16 (the products round them anyway)."""
    data = data.without_constant_inputs(stats)
    if self.cfg.matmul_precision == 'bfloat16':
      data = data.replace(
          x_train=data.x_train.astype(jnp.bfloat16), x_test=data.x_test.astype(jnp.bfloat16)
      )
    return data

  def grad_norms(self, params, standardiser, data):
    return self.example_scores(params, standardiser, data, ('grand',))['grand']

  def example_scores(self, params, standardiser, data, names=('el2n', 'grand')):
    """The scores of every training example at `params`, {name: (P,)} for `names` among
    'el2n' and 'grand'. GraNd is exact: the back-propagated errors of every layer are the
    gradients of the summed per-example losses with respect to zero perturbations of the
    pre-activations (`MLP`), and each layer's input norms are those of its sown input (the
    first layer's: the standardised x, from matrix-vector products, never a (P, N) temporary
    per seed)."""
    num_examples = data.x_train.shape[0]
    labels = targets(data.y_train, 2)
    depth, width = self.settings.depth, self.settings.width

    def summed_loss(perturbations):
      (logits, _), sown = self.model.apply(
          {'params': params, 'perturbations': perturbations},
          data.x_train,
          standardiser,
          data.columns,
          mutable=['intermediates'],
      )
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels, axis=0)
      return jnp.sum(ce), (logits, sown['intermediates']['hidden'])

    names = tuple(names)
    if 'probs' in names:  # the probabilities, then the other scores (an extra forward pass)
      logits_2xP = self.predict(params, standardiser, data, data.x_train)
      rest = self.example_scores(
          params, standardiser, data, tuple(n for n in names if n != 'probs')
      )
      return {**rest, 'probs': jax.nn.softmax(logits_2xP, axis=0).T}
    if not names:
      return {}
    layers = perturbation_names(depth)
    zeros = {
        PERTURBATION + name: jnp.zeros((width if name != 'readout' else 2, num_examples))
        for name in layers
    }
    if 'grand' not in names:
      _, (logits, _) = summed_loss(zeros)
      return {'el2n': difficulty.true_class_stats(logits, labels)[3]}
    deltas, (logits, hidden) = jax.grad(summed_loss, has_aux=True)(zeros)
    out = {
        'grand': exact_grad_norms(
            [deltas[PERTURBATION + name] for name in layers],
            [standardised_sq_norms(standardiser, data)]
            + [jnp.sum(jnp.square(h_HxP), axis=0) for h_HxP in hidden],
        )
    }
    if 'el2n' in names:
      out['el2n'] = difficulty.true_class_stats(logits, labels)[3]
    return out


def exact_grad_norms(deltas, input_sq_norms) -> jax.Array:
  """(P,) per-example norm of the gradient over all weights and biases of a stack of dense
  layers: layer l's weight gradient for example i is the outer product of its input a_li and
  its back-propagated error d_li, whose squared norm is |a_li|^2 |d_li|^2, and its bias
  gradient is d_li. `deltas[l]` is (F_l, P) (feature-major), `input_sq_norms[l]` (P,)."""
  total = 0.0
  for d_FxP, a_sq_P in zip(deltas, input_sq_norms):
    total = total + (a_sq_P + 1.0) * jnp.sum(jnp.square(d_FxP), axis=0)
  return jnp.sqrt(total)


def standardised_sq_norms(standardiser: Standardiser, data: TrainData) -> jax.Array:
  """(P,) squared norm of every standardised training input, sum_n ((x_n - shift_n) scale_n)^2,
  expanded into matrix-vector products of the raw inputs (float32, full precision)."""
  shift, scale = standardiser
  if data.columns is not None:
    shift, scale = shift[data.columns], scale[data.columns]
  x = data.x_train.astype(jnp.float32)
  s2 = jnp.square(scale)
  dot = lambda a, b: jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST)
  return dot(jnp.square(x), s2) - 2.0 * dot(x, s2 * shift) + jnp.sum(s2 * jnp.square(shift))
