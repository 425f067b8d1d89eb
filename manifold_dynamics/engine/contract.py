"""The model contract, and the `Network`: what the one trainer (`train.py`) needs of a model.

The contract: a model is a Flax Linen module mapping a batch of inputs (B, *input_shape) to K
logits (B, K), which `sow`s into the 'intermediates' collection the representations it offers
to measure, one name per layer (a name sown n > 1 times gives the layers name_0..name_{n-1}).
`inspect` checks a model against a task once, on the host, and lists its layers in the order
they are sown; `select_layers` picks the ones cfg.layers names.

The trainer never sees the module itself: it runs a `Network`, the model on one task with the
layers to measure:

  init(key)                                  the parameters of one run;
  forward(params, standardiser, data, x)     logits and the representations of the measured
                                             layers, from inputs as `data` holds them;
  predict, measure                           the same over many inputs, in chunks;
  logits(params, x)                          logits of standardised inputs (noisy test sets);
  grad_norms, example_scores                 per-example GraNd and EL2N;
  prepare(data, stats)                       the data as the network wants it on the device.

`ModuleNetwork` is the network of any module under the contract: the inputs are standardised
per input feature on T (SPEC §1) with the run's `Standardiser` before the module sees them,
reshaped to `input_shape`, and each sown representation is flattened per example (or
average-pooled over space with cfg.pooled). A model may bring a faster network of its own
behind the same interface (the MLP's: `models/mlp.py`), which the engine takes whenever the
model offers it for the task.

Logits come with the classes on `class_axis` and representations with their features on
`feature_axis`: -1 (batch-major, (B, K) and (B, F)), or 0 for a feature-major network ((K, B),
(F, B)), whose products under vmap need no transpose.
"""

import contextlib
import functools
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from manifold_dynamics.engine import difficulty, geometry
from manifold_dynamics.engine.state import Standardiser, TrainData, targets
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import scores as score_columns
from manifold_dynamics.records.history import POOLED


class Layer(NamedTuple):
  """One representation a model sows: where to find it and its shape per example."""

  name: str  # 'conv_0', or 'hidden_1' for the second value sown under 'hidden'
  path: Tuple[str, ...]  # keys into the 'intermediates' collection
  index: int  # which value sown under that path
  shape: Tuple[int, ...]  # per example, e.g. (H, W, C)
  # Averaged over space (C values per example) rather than flattened; None: as cfg.pooled.
  pooled: Optional[bool] = None

  @property
  def spatial(self) -> bool:
    """A feature map, (H, W, C) or (tokens, C): one that pooling changes."""
    return len(self.shape) > 1


class ModelInfo(NamedTuple):
  """What `inspect` found: the layers in the order they are sown, and K."""

  layers: List[Layer]
  num_classes: int


@contextlib.contextmanager
def _recording_sows(names: list):
  """Appends (module path, name) to `names` at every `sow` into 'intermediates', in call order
  (the collection itself comes back as a key-sorted dict)."""
  original = nn.Module.sow

  def sow(self, col, name, value, *args, **kwargs):
    if col == 'intermediates':
      names.append(tuple(self.scope.path) + (name,))
    return original(self, col, name, value, *args, **kwargs)

  nn.Module.sow = sow
  try:
    yield
  finally:
    nn.Module.sow = original


def inspect(model: nn.Module, input_shape: Sequence[int], num_classes: int) -> ModelInfo:
  """Checks that `model` maps (B, *input_shape) to (B, num_classes) logits and lists the
  layers it sows, in order (from shapes alone, `jax.eval_shape`); a one-line error otherwise."""
  x = jax.ShapeDtypeStruct((2,) + tuple(input_shape), jnp.float32)

  def forward(x):
    variables = model.init(jax.random.PRNGKey(0), x)
    return model.apply({'params': variables['params']}, x, mutable=['intermediates'])

  order = []
  try:
    with _recording_sows(order):
      out, sown = jax.eval_shape(forward, x)  # shapes only: nothing is computed
  except UserError:
    raise
  except Exception as e:
    raise UserError(
        f'the model cannot take inputs of shape (B, {", ".join(map(str, input_shape))}) '
        f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}).'
    ) from None
  if not hasattr(out, 'shape') or out.shape != (2, num_classes):
    raise UserError(
        f'the model must return logits (batch, K) = (B, {num_classes}) for this task; it '
        f'returned {getattr(out, "shape", type(out).__name__)} for a batch of 2.'
    )
  intermediates = sown.get('intermediates', {})
  layers, seen = [], set()
  for path in order:
    if path in seen:
      continue
    seen.add(path)
    values = functools.reduce(lambda d, k: d[k], path, intermediates)
    base = '/'.join(path)
    for i, v in enumerate(values):
      name = base if len(values) == 1 else f'{base}_{i}'
      layers.append(Layer(name, path, i, tuple(v.shape[1:])))
  if not layers:
    raise UserError(
        "the model sows no representation: call self.sow('intermediates', NAME, h) on the "
        'layers to measure.'
    )
  return ModelInfo(layers, num_classes)


def select_layers(info: ModelInfo, layers: str) -> List[Layer]:
  """The layers of cfg.layers: 'first', 'all' or comma-separated names, each of them with
  POOLED appended to measure it averaged over space rather than flattened ('conv_0:pooled';
  'all:pooled': every feature map of the model, averaged), so that one run measures a layer
  both ways ('all,all:pooled'); a one-line error naming the layers the model sows
  otherwise."""
  by_name = {layer.name: layer for layer in info.layers}
  chosen = []
  for token in [t.strip() for t in layers.split(',') if t.strip()]:
    pooled = token.endswith(POOLED)
    base = token[: -len(POOLED)] if pooled else token
    if base == 'first':
      found = info.layers[:1]
    elif base == 'all':
      found = list(info.layers)
    elif base in by_name:
      found = [by_name[base]]
    else:
      raise UserError(
          f'--layers names {base!r}, which the model does not sow; it sows '
          f'{", ".join(by_name)} (or use first or all; append {POOLED} to average one over '
          'space).'
      )
    if pooled:
      if base not in ('first', 'all') and not found[0].spatial:
        raise UserError(
            f'--layers names {token!r}, but {base} is not a feature map (its shape per '
            f'example is {found[0].shape}): only a conv or token layer can be pooled.'
        )
      found = [f._replace(name=f.name + POOLED, pooled=True) for f in found if f.spatial]
    chosen += found
  if not chosen:
    raise UserError(
        f'--layers={layers} selects no layer of this model: it sows {", ".join(by_name)}, '
        f'none of them a feature map to average over space.'
    )
  return list({layer.name: layer for layer in chosen}.values())


def representation(h: jax.Array, pooled: bool) -> jax.Array:
  """(B, F): each example's representation flattened, or averaged over the spatial axes
  (all but the last) first when `pooled`."""
  if pooled and h.ndim > 2:
    h = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))
  return h.reshape((h.shape[0], -1))


# Per-layer observables recorded with several layers (the per-class ones stay headline-only).
LAYER_OBSERVABLES = ('R_plus', 'R_minus', 'D', 'R_mean', 'D_mean')


def layer_geometry(h: jax.Array, y: jax.Array, w: jax.Array, num_classes: int, feature_axis=-1):
  """{observable: value} of one layer's representations h, (P, F) or (F, P) with
  feature_axis=0: R_plus, R_minus, D (K = 2) or R_mean, D_mean, R_class, D_class (K > 2)."""
  if num_classes == 2:
    return geometry.class_geometry(h, y, w, feature_axis=feature_axis)._asdict()
  return geometry.multiclass_geometry(h, y, num_classes, w, feature_axis=feature_axis)._asdict()


def chunked(x: jax.Array, size: int) -> Tuple[jax.Array, int]:
  """x (n, ...) zero-padded to a multiple of `size` and reshaped (chunks, size, ...)."""
  n = x.shape[0]
  size = min(size, n)
  count = math.ceil(n / size)
  pad = count * size - n
  x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  return x.reshape((count, size) + x.shape[1:]), n


def unchunked(y: jax.Array, n: int, examples_last: bool) -> jax.Array:
  """The outputs of `lax.map` over `chunked` inputs, (chunks, size, ...) or, with the examples
  on the last axis, (chunks, ..., size), merged back into n examples."""
  if examples_last:
    y = jnp.moveaxis(y, 0, -2)
    return y.reshape(y.shape[:-2] + (-1,))[..., :n]
  return y.reshape((-1,) + y.shape[2:])[:n]


class Network:
  """A model on one task, as the trainer runs it (see the module docstring). Subclasses give
  `init`, `forward` and `logits`; the rest follows from them."""

  class_axis = -1  # axis of the classes in the logits of `forward`
  feature_axis = -1  # axis of the features in each representation of `forward`

  def __init__(self, cfg, num_classes: int, input_shape: Sequence[int], layer_names):
    self.cfg = cfg
    self.num_classes = num_classes
    self.input_shape = tuple(input_shape)
    self.layer_names = list(layer_names)  # the measured layers, the headline first

  def init(self, key: jax.Array):
    """The parameters of one run, from its key."""
    raise NotImplementedError

  def forward(self, params, standardiser: Standardiser, data: TrainData, x, capture: bool):
    """(logits, representations) of the inputs x (B, ...), as `data` holds them (raw, maybe
    with columns left out): the representations of the measured layers, a list (or one array
    stacked over layers) with `capture`, else []."""
    raise NotImplementedError

  def logits(self, params, x_BxN: jax.Array) -> jax.Array:
    """(B, K) logits of standardised inputs with all N features."""
    raise NotImplementedError

  def prepare(self, data: TrainData, stats: Standardiser) -> TrainData:
    """The task as this network trains on it, given every run's standardiser `stats`."""
    del stats
    return data

  def _map(self, fn, x):
    chunks, n = chunked(x, self.cfg.eval_batch_size)
    out = jax.lax.map(fn, chunks)
    return jax.tree.map(lambda y: unchunked(y, n, self.class_axis == 0), out)

  def measure(self, params, standardiser, data, x):
    """`forward` with `capture` over many inputs, in chunks of cfg.eval_batch_size."""
    return self._map(lambda xb: self.forward(params, standardiser, data, xb, True), x)

  def predict(self, params, standardiser, data, x):
    """The logits of many inputs, in chunks of cfg.eval_batch_size."""
    return self._map(lambda xb: self.forward(params, standardiser, data, xb, False)[0], x)

  def grad_norms(self, params, standardiser, data) -> jax.Array:
    """(P,) GraNd: the norm of the gradient of each example's own loss with respect to every
    parameter, from per-example gradients (vmap of grad) in chunks of cfg.eval_batch_size."""
    labels = targets(data.y_train, self.num_classes)

    def one(x_N, y):
      def loss(p):
        logits, _ = self.forward(p, standardiser, data, x_N[None], False)
        return optax.softmax_cross_entropy_with_integer_labels(
            logits, y[None], axis=self.class_axis
        )[0]

      return sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(jax.grad(loss)(params)))

    x, n = chunked(data.x_train, self.cfg.eval_batch_size)
    y, _ = chunked(labels, self.cfg.eval_batch_size)
    sq = jax.lax.map(lambda xy: jax.vmap(one)(*xy), (x, y))
    return jnp.sqrt(sq.reshape(-1)[:n])

  def example_scores(self, params, standardiser, data, names=score_columns.CAPTURED) -> dict:
    """{name: (P,)} for `names` among 'el2n' and 'grand' at the parameters `params`, and with
    'probs' the softmax probabilities of every training example, (P, K)."""
    out = {}
    if 'el2n' in names or 'probs' in names:
      logits = self.predict(params, standardiser, data, data.x_train)
      logits_CxP = logits if self.class_axis == 0 else logits.T
      labels = targets(data.y_train, self.num_classes)
      if 'el2n' in names:
        out['el2n'] = difficulty.true_class_stats(logits_CxP, labels)[3]
      if 'probs' in names:
        out['probs'] = jax.nn.softmax(logits_CxP, axis=0).T
    if 'grand' in names:
      out['grand'] = self.grad_norms(params, standardiser, data)
    return out


class ModuleNetwork(Network):
  """The network of any Flax module under the contract (module docstring)."""

  def __init__(self, model: nn.Module, cfg, num_classes: int, input_shape: Sequence[int]):
    self.model = model
    self.layers = select_layers(inspect(model, input_shape, num_classes), cfg.layers)
    super().__init__(cfg, num_classes, input_shape, [layer.name for layer in self.layers])

  def init(self, key):
    return self.model.init(key, jnp.zeros((1,) + self.input_shape, jnp.float32))['params']

  def _standardised(self, standardiser: Standardiser, x_BxN):
    shift, scale = standardiser
    return ((x_BxN - shift[None]) * scale[None]).reshape((x_BxN.shape[0],) + self.input_shape)

  def forward(self, params, standardiser, data, x, capture):
    del data
    x = self._standardised(standardiser, x)
    if not capture:
      return self.model.apply({'params': params}, x), []
    logits, sown = self.model.apply({'params': params}, x, mutable=['intermediates'])
    reps = []
    for layer in self.layers:
      value = functools.reduce(lambda d, k: d[k], layer.path, sown['intermediates'])
      pooled = self.cfg.pooled if layer.pooled is None else layer.pooled
      reps.append(representation(value[layer.index], pooled))
    return logits, reps

  def logits(self, params, x_BxN):
    return self.model.apply({'params': params}, x_BxN.reshape((x_BxN.shape[0],) + self.input_shape))
