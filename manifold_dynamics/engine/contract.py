"""Training any Flax model: the model contract, K classes and mini-batches (SPEC §8).

The contract: a model is a Flax Linen module mapping a batch of inputs (B, *input_shape) to K
logits (B, K), which `sow`s into the 'intermediates' collection the representations it offers
to measure, one name per layer (a name sown n > 1 times gives the layers name_0..name_{n-1}).
`inspect` checks a model against a task once, on the host, and lists its layers in the order
they are sown; `make_train(cfg, model, layers)` then returns the same `train.Trainer` of pure
per-seed functions as the paper's fast path, so `train.fit` (chunks, stop rule, streaming,
resume, several devices and hosts) runs any model unchanged:

- inputs are standardised per input feature on T (SPEC §1) before the model sees them, with
  the run's `Standardiser`, and reshaped to `input_shape`;
- labels are +1 / -1 for a binary task (K = 2: output 0 is +1), else class indices in [0, K);
- every epoch records, on the whole of T, the loss, the K-way argmax errors and the geometry of
  each measured layer (flattened per example, or average-pooled over space with cfg.pooled):
  R+, R-, D for K = 2 (`geometry.class_geometry`, so a binary run through the contract gives
  the paper's observables), R_mean, D_mean and the per-class R_k and D_kl for K > 2
  (`geometry.multiclass_geometry`);
- full batch (cfg.batch_size None or P) is one update per epoch from the same forward pass
  that records the epoch; mini-batches are one pass over a per-seed permutation of T, drawn
  from the run's own key folded with the epoch (so resuming, or training beside any other
  seeds, draws the same batches), the last short batch kept. The records of a mini-batch epoch
  are measured before its first update, by a forward pass over T in chunks of
  cfg.eval_batch_size.

The built-in MLP on a binary full-batch task keeps the fast path of `train.make_train`
(feature-major layout, constant inputs left out, the standardiser fused into the first
product); `train.make_train` sends every other run here.
"""

import contextlib
import functools
import math
from typing import List, NamedTuple, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from manifold_dynamics.engine import difficulty, geometry
from manifold_dynamics.engine.optimizers import make_optimizer
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import scores as score_columns


class Layer(NamedTuple):
  """One representation a model sows: where to find it and its shape per example."""

  name: str  # 'conv_0', or 'hidden_1' for the second value sown under 'hidden'
  path: Tuple[str, ...]  # keys into the 'intermediates' collection
  index: int  # which value sown under that path
  shape: Tuple[int, ...]  # per example, e.g. (H, W, C)


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
  layers it sows, in order; a one-line error otherwise."""
  x = jnp.zeros((2,) + tuple(input_shape), jnp.float32)
  order = []
  try:
    with _recording_sows(order):
      variables = model.init(jax.random.PRNGKey(0), x)
      out, sown = model.apply({'params': variables['params']}, x, mutable=['intermediates'])
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
  """The layers of cfg.layers: 'first', 'all' or comma-separated names; a one-line error
  naming the layers the model sows otherwise."""
  if layers == 'first':
    return info.layers[:1]
  if layers == 'all':
    return list(info.layers)
  by_name = {layer.name: layer for layer in info.layers}
  names = [n.strip() for n in layers.split(',') if n.strip()]
  unknown = [n for n in names if n not in by_name]
  if unknown:
    raise UserError(
        f'--layers names {unknown[0]!r}, which the model does not sow; it sows '
        f'{", ".join(by_name)} (or use first or all).'
    )
  return [by_name[n] for n in dict.fromkeys(names)]


def representation(h: jax.Array, pooled: bool) -> jax.Array:
  """(B, F): each example's representation flattened, or averaged over the spatial axes
  (all but the last) first when `pooled`."""
  if pooled and h.ndim > 2:
    h = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))
  return h.reshape((h.shape[0], -1))


def targets(y: jax.Array, num_classes: int) -> jax.Array:
  """Class index of each label: +1 -> 0 and -1 -> 1 for a binary task, else y itself."""
  return (y < 0).astype(jnp.int32) if num_classes == 2 else y


def layer_geometry(h_PxF: jax.Array, y: jax.Array, w: jax.Array, num_classes: int) -> dict:
  """{observable: value} of one layer: R_plus, R_minus, D (K = 2) or R_mean, D_mean, R_class,
  D_class (K > 2)."""
  if num_classes == 2:
    return geometry.class_geometry(h_PxF, y, w)._asdict()
  return geometry.multiclass_geometry(h_PxF, y, num_classes, w)._asdict()


def _chunks(x: jax.Array, size: int) -> Tuple[jax.Array, int]:
  """x (n, ...) zero-padded to a multiple of `size` and reshaped (chunks, size, ...)."""
  n = x.shape[0]
  size = min(size, n)
  count = math.ceil(n / size)
  pad = count * size - n
  x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  return x.reshape((count, size) + x.shape[1:]), n


def make_train(cfg, model: nn.Module, layers: Sequence[Layer], num_classes: int, input_shape):
  """`train.Trainer` of per-seed pure functions for any `model` under the contract (module
  docstring); `layers` (from `select_layers`) are measured, the first one the headline."""
  # Imported here: train imports this module to dispatch to it.
  from manifold_dynamics.engine import train as train_lib

  tx = make_optimizer(cfg)
  input_shape = tuple(input_shape)
  layers = list(layers)
  per_layer = cfg.layers != 'first'

  def standardise(state, x_BxN):
    shift, scale = state.standardiser
    return ((x_BxN - shift[None]) * scale[None]).reshape((x_BxN.shape[0],) + input_shape)

  def forward(params, state, x_BxN, capture: bool):
    """Logits (B, K) and, with `capture`, the representations [(B, F)] of the layers."""
    x = standardise(state, x_BxN)
    if not capture:
      return model.apply({'params': params}, x), []
    logits, sown = model.apply({'params': params}, x, mutable=['intermediates'])
    reps = []
    for layer in layers:
      value = functools.reduce(lambda d, k: d[k], layer.path, sown['intermediates'])
      reps.append(representation(value[layer.index], cfg.pooled))
    return logits, reps

  def init(key, data, weights=None, standardiser=None):
    num_examples = data.x_train.shape[0]
    weights = (jnp.ones(num_examples) if weights is None else weights).astype(jnp.float32)
    if standardiser is None:
      standardiser = train_lib.run_standardiser(data, weights)
    # The parameters from the seed's key itself, as on the fast path (so the MLP starts from
    # the same weights either way); the batches from a key folded off it.
    params = model.init(key, jnp.zeros((1,) + input_shape, jnp.float32))['params']
    data_key = jax.random.fold_in(key, BATCH_STREAM)
    scores = None
    if score_columns.groups_of(cfg.scores):
      scores = difficulty.init(
          num_examples, score_columns.groups_of(cfg.scores), len(cfg.score_epochs)
      )
    return train_lib.RunState(
        train=train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx),
        weights=weights,
        standardiser=standardiser,
        scores=scores,
        key=data_key,
    )

  def weighted_loss(logits_BxK, y_B, w_B):
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, targets(y_B, num_classes))
    return jnp.sum(w_B * ce) / jnp.sum(w_B)

  def full_loss(params, state, data):
    logits, reps = forward(params, state, data.x_train, capture=True)
    return weighted_loss(logits, data.y_train, state.weights), (logits, reps)

  def measure(params, state, data):
    """Loss, logits (P, K) and representations of all of T, in chunks of eval_batch_size."""
    x, n = _chunks(data.x_train, cfg.eval_batch_size)
    logits, reps = jax.lax.map(lambda xb: forward(params, state, xb, capture=True), x)
    logits = logits.reshape((-1,) + logits.shape[2:])[:n]
    reps = [r.reshape((-1,) + r.shape[2:])[:n] for r in reps]
    return weighted_loss(logits, data.y_train, state.weights), logits, reps

  def predict(params, state, x_BxN):
    """Logits (B, K) of inputs x, in chunks of eval_batch_size, no representation kept."""
    x, n = _chunks(x_BxN, cfg.eval_batch_size)
    logits, _ = jax.lax.map(lambda xb: forward(params, state, xb, capture=False), x)
    return logits.reshape((-1,) + logits.shape[2:])[:n]

  def record(params, state, data, loss, logits, reps, with_test=True):
    wrong = jnp.argmax(logits, axis=-1) != targets(data.y_train, num_classes)

    def test_error():
      """The test error, and for K > 2 that of each class ((K,); NaN for a class with no test
      example)."""
      test_logits = predict(params, state, data.x_test)
      labels = targets(data.y_test, num_classes)
      wrong_test = (jnp.argmax(test_logits, -1) != labels).astype(jnp.float32)
      if num_classes == 2:
        return jnp.mean(wrong_test), None
      count = jax.ops.segment_sum(jnp.ones_like(wrong_test), labels, num_classes)
      per_class = jax.ops.segment_sum(wrong_test, labels, num_classes) / count
      return jnp.mean(wrong_test), per_class

    if with_test is True:
      test, test_class = test_error()
    else:
      nan = jnp.float32(jnp.nan)
      skipped = (nan, None if num_classes == 2 else jnp.full(num_classes, nan))
      test, test_class = jax.lax.cond(with_test, test_error, lambda: skipped)
    geos = [layer_geometry(r, data.y_train, state.weights, num_classes) for r in reps]
    per = None
    if per_layer:
      per = {k: jnp.stack([g[k] for g in geos]) for k in geos[0] if k in LAYER_OBSERVABLES}
    return train_lib.EpochRecord(
        loss=loss,
        train_error=jnp.sum(state.weights * wrong) / jnp.sum(state.weights),
        test_error=test,
        test_error_class=test_class,
        mistakes_packed=jnp.packbits(wrong),
        layers=per,
        **geos[0],
    )

  def full_batch(data):
    return cfg.batch_size is None or cfg.batch_size >= data.x_train.shape[0]

  def epoch_step(state, data, epoch, with_test=True):
    params = state.train.params
    if full_batch(data):
      (loss, (logits, reps)), grads = jax.value_and_grad(full_loss, has_aux=True)(
          params, state, data
      )
      rec = record(params, state, data, loss, logits, reps, with_test)
      new = state.replace(train=state.train.apply_gradients(grads=grads))
    else:
      loss, logits, reps = measure(params, state, data)
      rec = record(params, state, data, loss, logits, reps, with_test)
      new = state.replace(train=sgd_epoch(state, data, epoch))
    if state.scores is not None:  # from this epoch's logits, before its update
      scores = difficulty.accumulate(
          state.scores,
          epoch,
          logits.T,
          targets(data.y_train, num_classes),
          cfg.score_epochs,
          lambda: grad_norms(state, data),
      )
      new = new.replace(scores=scores)
    return new, rec

  def grad_norms(state, data):
    """(P,) GraNd: the norm of the gradient of each example's own loss with respect to every
    parameter, from per-example gradients (vmap of grad) in chunks of eval_batch_size."""
    params = state.train.params

    def one(x_N, y):
      def loss(p):
        logits, _ = forward(p, state, x_N[None], capture=False)
        return optax.softmax_cross_entropy_with_integer_labels(
            logits, targets(y[None], num_classes)
        )[0]

      return sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(jax.grad(loss)(params)))

    x, n = _chunks(data.x_train, cfg.eval_batch_size)
    y, _ = _chunks(data.y_train, cfg.eval_batch_size)
    sq = jax.lax.map(lambda xy: jax.vmap(one)(*xy), (x, y))
    return jnp.sqrt(sq.reshape(-1)[:n])

  def sgd_epoch(state, data, epoch):
    """One pass over a fresh permutation of T in batches of cfg.batch_size, the last short
    batch kept (padded with weight-0 examples, which change nothing)."""
    num_examples, size = data.x_train.shape[0], cfg.batch_size
    count = math.ceil(num_examples / size)
    order = jax.random.permutation(jax.random.fold_in(state.key, epoch), num_examples)
    order = jnp.concatenate([order, jnp.zeros(count * size - num_examples, order.dtype)])
    real = (jnp.arange(count * size) < num_examples).astype(jnp.float32)
    batches = (order.reshape(count, size), real.reshape(count, size))

    def step(ts, batch):
      idx, real_B = batch
      w_B = state.weights[idx] * real_B

      def loss_fn(params):
        logits, _ = forward(params, state, data.x_train[idx], capture=False)
        return weighted_loss(logits, data.y_train[idx], w_B)

      grads = jax.grad(loss_fn)(ts.params)
      # A batch of pruned examples only (weight 0) has no loss to follow: skip it.
      has_any = jnp.sum(w_B) > 0
      grads = jax.tree.map(lambda g: jnp.where(has_any, g, 0.0), grads)
      return ts.apply_gradients(grads=grads), None

    ts, _ = jax.lax.scan(step, state.train, batches)
    return ts

  def run_epochs(state, data, num_epochs: int, first_epoch=0):
    epochs = first_epoch + jnp.arange(num_epochs)
    every = max(cfg.test_every, 1)
    with_test = lambda t: True if cfg.test_every == 1 else (cfg.test_every > 0) & (t % every == 0)
    return jax.lax.scan(lambda s, t: epoch_step(s, data, t, with_test(t)), state, epochs)

  def observe(state, data):
    params = state.train.params
    if full_batch(data):
      loss, (logits, reps) = full_loss(params, state, data)
    else:
      loss, logits, reps = measure(params, state, data)
    return record(params, state, data, loss, logits, reps)

  def train(key, data, weights=None):
    state = init(key, data, weights)
    state, records = run_epochs(state, data, cfg.epochs)
    final = observe(state, data)
    records = jax.tree.map(lambda r, f: jnp.concatenate([r, f[None]]), records, final)
    return state, records

  def example_scores(state, data, names=score_columns.CAPTURED):
    """{name: (P,)} for `names` among 'el2n' and 'grand' at the current parameters."""
    params = state.train.params
    out = {}
    if 'el2n' in names:
      logits = predict(params, state, data.x_train)
      out['el2n'] = difficulty.true_class_stats(logits.T, targets(data.y_train, num_classes))[3]
    if 'grand' in names:
      out['grand'] = grad_norms(state, data)
    return out

  return train_lib.Trainer(init, run_epochs, observe, train, example_scores)


BATCH_STREAM = 0x5EED  # folded into a seed's key for its mini-batch permutations

# Per-layer observables recorded with several layers (the per-class ones stay headline-only).
LAYER_OBSERVABLES = ('R_plus', 'R_minus', 'D', 'R_mean', 'D_mean')


def parameter_count(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Trainable parameters of `model`, from shapes alone (`jax.eval_shape`, nothing computed)."""
  shapes = jax.eval_shape(
      model.init, jax.random.PRNGKey(0), jnp.zeros((1,) + tuple(input_shape), jnp.float32)
  )['params']
  return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))
