"""Seed-parallel full-batch training with the observables recorded every epoch (SPEC §3-4).

`make_train(cfg)` returns a `Trainer` of pure functions of one run (one seed):

    init(key, data, weights) -> RunState
    run_epochs(state, data, num_epochs) -> (state, EpochRecord stacked over epochs)
    observe(state, data) -> EpochRecord
    train(key, data, weights) -> (state, EpochRecord stacked over epochs 0..T_end)

Each epoch is one `jax.lax.scan` step: a single forward pass over the whole training set gives
the loss, its gradient and the first hidden layer h, so the geometry of epoch t is that of the
parameters *before* update t+1 (epoch 0 = initialisation). Seeds are a leading array axis:
`fit` runs `jax.jit(jax.vmap(...))` over them, in chunks of epochs with a progress line between
chunks, and returns a host-side `History` of arrays shaped (seeds, epochs + 1, ...).

A run trains on a weighted training set: weight 1 = in T, 0 = pruned. The weights enter the
loss, the training error, the class centroids of the geometry and the standardisation
statistics (SPEC §1, recomputed on the pruned set), which are applied inside the first layer
(`models.Dense`), so runs with different pruned sets, of any size, share one compiled program
and one matrix product over the shared raw inputs.
"""

import functools
import math
import time
import types
from typing import Callable, NamedTuple, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.engine import (
    contract,
    difficulty,
    distributed,
    geometry,
    preemption,
    stopping,
)
from manifold_dynamics.engine.models import (
    MLP,
    MODELS,
    PERTURBATION,
    Standardiser,
    perturbation_names,
)
from manifold_dynamics.engine.optimizers import make_optimizer
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import scores as score_columns
from manifold_dynamics.records.history import History, Resumed


@flax.struct.dataclass
class TrainData:
  """Device arrays of one binary task, shared by every run. Labels are +1 / -1 (SPEC §1)."""

  x_train: jax.Array  # (P, N) float32 grey inputs on [0, 1], not standardised (see `start`)
  y_train: jax.Array  # (P,) int32
  x_test: jax.Array  # (n_test, N) float32 on [0, 1]
  y_test: jax.Array  # (n_test,) int32
  # None: x holds all N inputs. Else (C,) int32: x holds only these input columns (see
  # `without_constant_inputs`); the network still has N inputs.
  columns: Optional[jax.Array] = None
  # K: labels are +1 / -1 when 2 (output 0 is +1), else class indices in [0, K).
  num_classes: int = flax.struct.field(pytree_node=False, default=2)
  # Shape of one input before flattening, e.g. (28, 28, 1); None = the flat vector (N,).
  input_shape: Optional[Tuple[int, ...]] = flax.struct.field(pytree_node=False, default=None)
  # False: the task standardised its inputs itself (--grey=sum_standardised) and the runs use
  # them as they are (an identity standardiser), rather than standardising on T (SPEC §1).
  standardise: bool = flax.struct.field(pytree_node=False, default=True)

  @classmethod
  def from_task(cls, task) -> 'TrainData':
    shape = getattr(task, 'input_shape', None)
    return cls(
        jnp.asarray(task.x_train),
        jnp.asarray(task.y_train, jnp.int32),
        jnp.asarray(task.x_test),
        jnp.asarray(task.y_test, jnp.int32),
        num_classes=int(getattr(task, 'num_classes', 2)),
        input_shape=None if shape is None else tuple(int(d) for d in shape),
        standardise=bool(getattr(task, 'standardise', True)),
    )

  @property
  def shape_of_input(self) -> Tuple[int, ...]:
    """One input's shape as a model sees it."""
    return self.input_shape or (self.x_train.shape[1],)

  def without_constant_inputs(self, stats: Standardiser) -> 'TrainData':
    """The same task with the input columns that every run's standardiser scales by 0 left
    out of x_train and x_test (pixels constant on the training set: 115 of 784 on the MNIST
    defaults). They standardise to 0 and contribute exactly nothing to any product, so
    training is unchanged while every first-layer product shrinks; the parameters keep all N
    rows (the optimiser still updates the unused ones, e.g. weight decay). `stats` holds the
    standardisers of every run, (N,) or (runs, N)."""
    if self.columns is not None:
      raise ValueError('constant inputs were already left out')
    used = np.flatnonzero(np.any(np.atleast_2d(np.asarray(stats.scale_N)) != 0, axis=0))
    if len(used) == self.x_train.shape[1]:
      return self
    columns = jnp.asarray(used, jnp.int32)
    return self.replace(
        x_train=self.x_train[:, columns], x_test=self.x_test[:, columns], columns=columns
    )


@flax.struct.dataclass
class RunState:
  """The scan carry of one run."""

  train: train_state.TrainState  # parameters, optimiser state, step
  weights: jax.Array  # (P,) float32, 1 = in the training set, 0 = pruned
  standardiser: Standardiser  # statistics of the weighted training set
  # Per-example difficulty scores of the run so far (cfg.scores), or None.
  scores: Optional[difficulty.Accumulators] = None
  # Key of the run's mini-batch permutations (folded with the epoch), `contract.py`; None on
  # the fast path, which draws nothing.
  key: Optional[jax.Array] = None


def run_standardiser(data: TrainData, w: jax.Array) -> Standardiser:
  """The standardiser of runs weighted by w ((P,), or (runs, P) for one per run): the
  statistics of the weighted training set, or the identity for a task's own inputs."""
  if data.standardise:
    stats = standardisers if w.ndim == 2 else weighted_standardiser
    return stats(data.x_train, w)
  shape = w.shape[:-1] + (data.x_train.shape[1],)
  return Standardiser(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32))


def standardisers(x_PxN: jax.Array, w_SxP: jax.Array) -> Standardiser:
  """One standardiser per row of weights, computed one at a time (lax.map), so that memory
  holds one (P, N) temporary rather than one per run."""
  return jax.lax.map(lambda w_P: weighted_standardiser(x_PxN, w_P), w_SxP)


def weighted_standardiser(x_PxN: jax.Array, w_P: jax.Array) -> Standardiser:
  """Mean and 1/std per input over the examples with weight > 0 (weighted); pixels constant
  on that set get scale 0, so they standardise to 0, never to inf or NaN."""
  w_P = w_P / jnp.sum(w_P)
  mean_N = w_P @ x_PxN
  var_N = jnp.sum(w_P[:, None] * jnp.square(x_PxN - mean_N[None, :]), axis=0)
  in_set = (w_P > 0)[:, None]
  constant_N = jnp.max(jnp.where(in_set, x_PxN, -jnp.inf), axis=0) == jnp.min(
      jnp.where(in_set, x_PxN, jnp.inf), axis=0
  )
  safe_var = jnp.where(constant_N, 1.0, var_N)
  return Standardiser(mean_N, jnp.where(constant_N, 0.0, jax.lax.rsqrt(safe_var)))


@flax.struct.dataclass
class EpochRecord:
  """Observables of one seed at one epoch (leading axes added by scan and vmap). A binary task
  records R+, R-, D; a K-class one R_mean, D_mean, R_class, D_class (SPEC §8)."""

  loss: jax.Array  # mean cross-entropy over the training set
  train_error: jax.Array  # fraction of the training set misclassified
  test_error: jax.Array  # fraction of the test set misclassified
  mistakes_packed: jax.Array  # (ceil(P / 8),) uint8: np.packbits of the misclassified mask
  R_plus: Optional[jax.Array] = None  # gyration radius of M+
  R_minus: Optional[jax.Array] = None  # gyration radius of M-
  D: Optional[jax.Array] = None  # distance between the class centroids
  R_mean: Optional[jax.Array] = None  # mean over classes of R_k
  D_mean: Optional[jax.Array] = None  # mean over class pairs of D_kl
  R_class: Optional[jax.Array] = None  # (K,) R_k
  D_class: Optional[jax.Array] = None  # (K (K - 1) / 2,) D_kl, k < l
  test_error_class: Optional[jax.Array] = None  # (K,) test error of each class
  # {observable: (layers,)} of every measured layer (cfg.layers other than 'first'), the
  # first one the headline; else None.
  layers: Optional[dict] = None


class Trainer(NamedTuple):
  init: Callable
  run_epochs: Callable
  observe: Callable
  train: Callable
  example_scores: Callable


def class_index(y: jax.Array) -> jax.Array:
  """Output unit of label y: 0 for +1, 1 for -1."""
  return (y < 0).astype(jnp.int32)


def fast_path(cfg: TrainConfig, data: Optional[TrainData] = None, model=None) -> bool:
  """Whether a run takes the built-in MLP's fast path: no model of the caller's, a binary
  task, full batch (B >= P) and layers named first or all."""
  if data is None:
    return model is None and cfg.model == 'mlp' and cfg.batch_size is None
  return (
      model is None
      and cfg.model == 'mlp'
      and data.num_classes == 2
      and (cfg.batch_size is None or cfg.batch_size >= data.x_train.shape[0])
      and cfg.layers in ('first', 'all')
  )


def build_model(cfg: TrainConfig, data: TrainData, model=None):
  """(model, measured layers) of a run through the contract (`contract.py`), checked once."""
  model = MODELS[cfg.model](cfg, data.num_classes) if model is None else model
  if cfg.matmul_precision != 'float32':
    raise UserError(
        f'--matmul_precision={cfg.matmul_precision} applies to the built-in MLP on a binary '
        f'full-batch task only; drop it for this run.'
    )
  info = contract.inspect(model, data.shape_of_input, data.num_classes)
  return model, contract.select_layers(info, cfg.layers)


def measured_layers(cfg: TrainConfig, data: TrainData, model=None) -> list:
  """Names of the layers whose geometry a run records, the headline first."""
  if fast_path(cfg, data, model):
    names = ['hidden'] if cfg.depth == 2 else [f'hidden_{k}' for k in range(cfg.depth - 1)]
    return names if cfg.layers == 'all' else names[:1]
  return [layer.name for layer in build_model(cfg, data, model)[1]]


def logits_function(cfg: TrainConfig, data: TrainData, model=None) -> Callable:
  """logits(params, x (B, N) standardised inputs) -> (B, K) of the nets a run trains (e.g. to
  test them on noisy inputs): the MLP of the fast path, or the model through the contract."""
  if fast_path(cfg, data, model):
    mlp = MLP(cfg.depth, cfg.width, cfg.activation, cfg.init_scale)
    return lambda params, x: mlp.apply({'params': params}, x)[0]
  model, _ = build_model(cfg, data, model)
  shape = data.shape_of_input
  return lambda params, x: model.apply({'params': params}, x.reshape((x.shape[0],) + shape))


def make_train(cfg: TrainConfig, data: Optional[TrainData] = None, model=None) -> Trainer:
  """Pure per-seed training functions for `cfg` (see module docstring) on tasks like `data`
  (its K and input shape; None = the paper's binary task): the MLP's fast path below, or any
  model through the contract (`contract.make_train`), `model` if given, else cfg.model.

  Activations are kept feature-major, (H, P) per seed (`models.MLP`): under vmap the first
  layer of all seeds is one matrix product whose output needs no transpose."""
  if not fast_path(cfg, data, model):
    if data is None:
      raise ValueError('make_train needs the data (its K and input shape) off the fast path')
    model, layers = build_model(cfg, data, model)
    return contract.make_train(cfg, model, layers, data.num_classes, data.shape_of_input)
  model = MLP(
      cfg.depth,
      cfg.width,
      cfg.activation,
      cfg.init_scale,
      feature_major=True,
      precision=cfg.matmul_precision,
  )
  tx = make_optimizer(cfg)

  def init(
      key: jax.Array,
      data: TrainData,
      weights: Optional[jax.Array] = None,
      standardiser: Optional[Standardiser] = None,
  ) -> RunState:
    """A fresh run. Under vmap, pass `weights` and `standardiser` unbatched when the runs
    share them, or precomputed per run (`standardisers`), never computed here per run: each
    computation holds a (P, N) temporary."""
    num_examples = data.x_train.shape[0]
    weights = (jnp.ones(num_examples) if weights is None else weights).astype(jnp.float32)
    if standardiser is None:
      if data.columns is not None:
        raise ValueError('pass the standardiser of the full inputs with data.columns')
      standardiser = run_standardiser(data, weights)
    num_inputs = standardiser.shift_N.shape[-1]  # N, whatever columns data.x_train holds
    params = model.init(key, jnp.zeros((1, num_inputs), jnp.float32))['params']
    scores = None
    if score_columns.groups_of(cfg.scores):
      scores = difficulty.init(
          num_examples, score_columns.groups_of(cfg.scores), len(cfg.score_epochs)
      )
    return RunState(
        train=train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx),
        weights=weights,
        standardiser=standardiser,
        scores=scores,
    )

  def apply(params, state: RunState, data: TrainData, x, **kwargs):
    return model.apply({'params': params}, x, state.standardiser, data.columns, **kwargs)

  def loss_fn(params, state: RunState, data: TrainData):
    """Loss and (logits (2, P), h): h the first hidden layer (H, P), or with
    cfg.layers == 'all' every hidden layer stacked (L - 1, H, P), the first one first."""
    if cfg.layers == 'all':
      (logits_2xP, _), sown = apply(params, state, data, data.x_train, mutable=['intermediates'])
      h = jnp.stack(sown['intermediates']['hidden'])
    else:
      logits_2xP, h = apply(params, state, data, data.x_train)
    ce_P = optax.softmax_cross_entropy_with_integer_labels(
        logits_2xP, class_index(data.y_train), axis=0
    )
    loss = jnp.sum(state.weights * ce_P) / jnp.sum(state.weights)
    return loss, (logits_2xP, h)

  def record(
      params, state: RunState, data: TrainData, loss, logits_2xP, h, with_test=True
  ) -> EpochRecord:
    """The observables of one epoch; `with_test` False (or a traced bool) records the test
    error as NaN instead of evaluating the test set."""
    wrong_P = jnp.argmax(logits_2xP, axis=0) != class_index(data.y_train)

    def test_error():
      test_logits, _ = apply(params, state, data, data.x_test)
      return jnp.mean(
          (jnp.argmax(test_logits, axis=0) != class_index(data.y_test)).astype(jnp.float32)
      )

    if with_test is True:
      test = test_error()
    else:  # an unbatched predicate stays a real branch under vmap: skipped epochs cost nothing
      test = jax.lax.cond(with_test, test_error, lambda: jnp.float32(jnp.nan))
    layers = None
    geo_fn = functools.partial(geometry.class_geometry, feature_axis=0)
    if cfg.layers == 'all':  # h is (L - 1, H, P): every hidden layer
      layers = jax.vmap(geo_fn, in_axes=(0, None, None))(h, data.y_train, state.weights)
      geo = jax.tree.map(lambda x: x[0], layers)
      layers = layers._asdict()
    else:
      geo = geo_fn(h, data.y_train, state.weights)
    return EpochRecord(
        R_plus=geo.R_plus,
        R_minus=geo.R_minus,
        D=geo.D,
        loss=loss,
        train_error=jnp.sum(state.weights * wrong_P) / jnp.sum(state.weights),
        test_error=test,
        mistakes_packed=jnp.packbits(wrong_P),
        layers=layers,
    )

  def example_scores(state: RunState, data: TrainData, names=score_columns.CAPTURED):
    """The scores of every training example at the current parameters, {name: (P,)} for
    `names` among 'el2n' and 'grand'. GraNd is exact: the back-propagated errors of every
    layer are the gradients of the summed per-example losses with respect to zero
    perturbations of the pre-activations (`models.MLP`), and each layer's input norms are
    those of its sown input (the first layer's: the standardised x, from matrix-vector
    products, never an (P, N) temporary per seed)."""
    params = state.train.params
    num_examples = data.x_train.shape[0]
    labels = class_index(data.y_train)

    def summed_loss(perturbations):
      (logits, _), sown = model.apply(
          {'params': params, 'perturbations': perturbations},
          data.x_train,
          state.standardiser,
          data.columns,
          mutable=['intermediates'],
      )
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels, axis=0)
      return jnp.sum(ce), (logits, sown['intermediates']['hidden'])

    names = tuple(names)
    layers = perturbation_names(cfg.depth)
    zeros = {
        PERTURBATION + name: jnp.zeros((cfg.width if name != 'readout' else 2, num_examples))
        for name in layers
    }
    if 'grand' not in names:
      _, (logits, _) = summed_loss(zeros)
      return {'el2n': difficulty.true_class_stats(logits, labels)[3]}
    deltas, (logits, hidden) = jax.grad(summed_loss, has_aux=True)(zeros)
    out = {
        'grand': difficulty.grad_norms(
            [deltas[PERTURBATION + name] for name in layers],
            [standardised_sq_norms(state.standardiser, data)]
            + [jnp.sum(jnp.square(h_HxP), axis=0) for h_HxP in hidden],
        )
    }
    if 'el2n' in names:
      out['el2n'] = difficulty.true_class_stats(logits, labels)[3]
    return out

  def epoch_step(state: RunState, data: TrainData, epoch, with_test=True):
    params = state.train.params
    (loss, (logits, h)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, data)
    rec = record(params, state, data, loss, logits, h, with_test)
    new = state.replace(train=state.train.apply_gradients(grads=grads))
    if state.scores is not None:
      scores = difficulty.accumulate(
          state.scores,
          epoch,
          logits,
          class_index(data.y_train),
          cfg.score_epochs,
          lambda: example_scores(state, data, ('grand',))['grand'],
      )
      new = new.replace(scores=scores)
    return new, rec

  def run_epochs(state: RunState, data: TrainData, num_epochs: int, first_epoch=0):
    """`num_epochs` updates from epoch `first_epoch` (keep it unbatched under vmap: it decides
    which epochs evaluate the test set, cfg.test_every, and take scores, cfg.score_epochs)."""
    epochs = first_epoch + jnp.arange(num_epochs)
    every = max(cfg.test_every, 1)
    with_test = lambda t: True if cfg.test_every == 1 else (cfg.test_every > 0) & (t % every == 0)
    return jax.lax.scan(lambda s, t: epoch_step(s, data, t, with_test(t)), state, epochs)

  def observe(state: RunState, data: TrainData) -> EpochRecord:
    loss, (logits, h) = loss_fn(state.train.params, state, data)
    return record(state.train.params, state, data, loss, logits, h)

  def train(key: jax.Array, data: TrainData, weights: Optional[jax.Array] = None):
    state = init(key, data, weights)
    state, records = run_epochs(state, data, cfg.epochs)
    final = observe(state, data)
    records = jax.tree.map(lambda r, f: jnp.concatenate([r, f[None]]), records, final)
    return state, records

  return Trainer(init, run_epochs, observe, train, example_scores)


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


class DivergenceError(UserError):
  """Training produced non-finite values; `history` holds everything computed until then."""

  def __init__(self, message: str, history: History):
    super().__init__(message)
    self.history = history


def seed_keys(root_seed: int, seeds: int) -> jax.Array:
  """One key per seed: fold_in(PRNGKey(root_seed), s) for s = 0..seeds-1."""
  root = jax.random.PRNGKey(root_seed)
  return jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.arange(seeds))


PROGRESS_SECONDS = 20.0  # target wall time between progress lines with chunk_epochs=0
# Longest automatic chunk under a stop rule: training overshoots the stop by less than this.
STOP_CHUNK_EPOCHS = 32
_PROBE_EPOCHS = 8  # first chunk, timed to size the others


def _chunk_for_rate(epochs_per_second: float, remaining: int) -> int:
  """A power of two of epochs lasting about PROGRESS_SECONDS (powers of two keep the number of
  distinct compiled chunk lengths small across runs of one process)."""
  target = max(1.0, epochs_per_second * PROGRESS_SECONDS)
  return int(min(2 ** math.floor(math.log2(target)), max(remaining, 1)))


def _rate(per_second: float) -> str:
  """'127' or '0.52': whole numbers from 10 up, three digits below."""
  return f'{per_second:,.0f}' if per_second >= 10 else f'{per_second:.3g}'


def _format_seconds(s: float) -> str:
  s = int(round(s))
  return f'{s // 3600}h{s % 3600 // 60:02d}m' if s >= 3600 else f'{s // 60}m{s % 60:02d}s'


def seed_shardings():
  """(by_seed, replicated) NamedShardings over a 1-D mesh 'seeds' of all devices (of every
  process), or None on one device."""
  devices = jax.devices()
  if len(devices) == 1:
    return None
  mesh = jax.sharding.Mesh(np.array(devices), ('seeds',))
  return (
      jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('seeds')),
      jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()),
  )


def seed_padding(num_seeds: int) -> int:
  """Runs added so that the seeds split evenly over the devices (see `pad_seeds`)."""
  return -num_seeds % jax.device_count()


def pad_seeds(x, padding: int):
  """`x` (leading seed axis) with its last run repeated `padding` times. A padded run is an
  exact copy of the last real one (same key, same weights), so it costs compute but never
  changes a result, and `fit` drops it from everything it returns or saves."""
  if not padding:
    return x
  x = np.asarray(x)
  return np.concatenate([x, np.repeat(x[-1:], padding, axis=0)])


def start(
    cfg: TrainConfig,
    data: TrainData,
    keys: Optional[jax.Array] = None,
    weights: Optional[np.ndarray] = None,
    log: Callable[[str], None] = lambda _: None,
    model=None,
):
  """The initial `RunState` of every run (leading seed axis) and the data to train it on, as
  `fit` trains: one standardiser per distinct training set, the inputs that no run uses left
  out (`TrainData.without_constant_inputs`), with bfloat16 products the inputs stored in
  bfloat16 (the products round them anyway), and the seeds padded to a multiple of the device
  count (`pad_seeds`) and sharded over all devices, data replicated (jit then partitions every
  vmapped computation by seed). The state has cfg.seeds + seed_padding(cfg.seeds) runs.
  `keys` defaults to `seed_keys(cfg.seed, cfg.seeds)`; `weights` and `model` as in `fit`. Off
  the fast path (`fast_path`) the inputs stay whole: a model through the contract sees every
  input feature in its shape."""
  keys = seed_keys(cfg.seed, cfg.seeds) if keys is None else keys
  num_examples = data.x_train.shape[0]
  weights = np.ones(num_examples, np.float32) if weights is None else np.asarray(weights)
  if not np.all(np.sum(np.atleast_2d(weights), axis=1) > 0):
    raise UserError('every run needs at least one training example of positive weight.')
  if cfg.batch_size is not None and cfg.batch_size > num_examples:
    raise UserError(
        f'--batch_size={cfg.batch_size} exceeds the {num_examples} training examples; use '
        f'--batch_size <= {num_examples} (or leave it unset for full batch).'
    )
  padding = seed_padding(len(keys))
  if padding:
    log(
        f'note: {len(keys)} seeds padded to {len(keys) + padding} to split evenly over '
        f'{jax.device_count()} devices; the {padding} extra runs are dropped.'
    )
  keys = pad_seeds(
      jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys,
      padding,
  )
  weights = jnp.asarray(weights if weights.ndim == 1 else pad_seeds(weights, padding), jnp.float32)
  # one standardiser shared by every run (broadcast by vmap), or one per pruned set
  stats = jax.jit(run_standardiser)(data, weights)
  per_run = None if weights.ndim == 1 else 0
  fast = fast_path(cfg, data, model)
  if fast:
    data = data.without_constant_inputs(stats)
  if (
      cfg.matmul_precision == 'bfloat16' and fast
  ):  # every product rounds x to bfloat16: do it once here
    data = data.replace(
        x_train=data.x_train.astype(jnp.bfloat16), x_test=data.x_test.astype(jnp.bfloat16)
    )
  shardings = seed_shardings()
  if shardings is not None:
    by_seed, replicated = shardings
    run_sharding = by_seed if per_run == 0 else replicated
    keys = distributed.put(keys, by_seed)
    data = jax.tree.map(lambda x: distributed.put(x, replicated), data)
    weights = distributed.put(weights, run_sharding)
    stats = jax.tree.map(lambda x: distributed.put(x, run_sharding), stats)
  init_v = jax.jit(jax.vmap(make_train(cfg, data, model).init, in_axes=(0, None, per_run, per_run)))
  return init_v(jnp.asarray(keys), data, weights, stats), data


class MemoryStore:
  """Where `fit` keeps the records of its chunks by default: in host memory. The protocol
  (resume, append, checkpoint, finish, diverged, history) is the one `store.HistoryStore`
  implements on disk, with checkpoints, for runs that must survive an interruption."""

  def __init__(self, num_examples: int):
    self.num_examples = num_examples
    self.chunks = []

  def resume(self, like) -> Optional[Resumed]:
    del like
    return None

  def append(self, records):
    self.chunks.append(records)

  def checkpoint(self, state, epochs_trained: int, chunk: int):
    pass

  def finish(self, final, state, epochs_trained: int):
    self.chunks.append(jax.tree.map(lambda f: np.asarray(f)[:, None], final))

  def diverged(self):
    pass

  def history(self) -> History:
    records = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *self.chunks)
    return History.from_records(records, self.num_examples)


def fit(
    cfg: TrainConfig,
    data: TrainData,
    log: Optional[Callable[[str], None]] = print,
    keys: Optional[jax.Array] = None,
    weights: Optional[np.ndarray] = None,
    return_state: bool = False,
    store=None,
    model=None,
):
  """Trains cfg.seeds initialisations in parallel for cfg.epochs epochs.

  `model` is any Flax module under the contract of `contract.py` (logits (B, K), sown
  representations), else cfg.model is built (`models.MODELS`); the built-in MLP on a binary
  full-batch task takes the fast path (`fast_path`).

  `weights` is None (every run trains on all of T), (P,) shared by every run, or (seeds, P),
  one pruned set per run. Returns the `History`, and with `return_state` also the final
  `RunState` of every run (leading seed axis), e.g. to evaluate the trained nets further.

  Runs jit(vmap(run_epochs)) in chunks of epochs, logging epoch, seed-epochs per second and
  ETA between chunks; the seeds are sharded over all devices (of every process, see
  `distributed`). Between chunks, host-side collaborators decide:
  - `store` keeps each chunk's records: `MemoryStore` (default) in memory; a
    `store.HistoryStore` streams them to disk and checkpoints the state, and a store that
    already holds progress is resumed from its checkpoint (bit-identical to an uninterrupted
    run on the same machine: same chunk boundaries, same compiled chunks);
  - divergence: `DivergenceError` (the records so far are in the store and in the error) as
    soon as a chunk produces non-finite values;
  - with cfg.stop_after_inversion a `stopping.InversionStop` ends training at the first chunk
    boundary where all seeds have inverted (the History then covers the epochs trained);
  - SIGTERM/SIGINT (`preemption.Deferred`) end training after the chunk in flight, raising
    `preemption.Interrupted` once its records and state are saved.
  """
  log = log or (lambda _: None)
  num_examples = data.x_train.shape[0]
  store = MemoryStore(num_examples) if store is None else store
  state, data = start(cfg, data, keys, weights, log, model)
  resumed = _resume(store, state, cfg.seeds, history_lib.observables(data.num_classes == 2))
  done, chunk, observed = 0, cfg.chunk_epochs or min(_PROBE_EPOCHS, cfg.epochs), None
  if resumed is not None:
    state = _put_like(state, pad_seeds_tree(resumed.state, seed_padding(cfg.seeds)))
    done, chunk, observed = resumed.epochs, resumed.chunk or chunk, resumed.observables
    if resumed.complete:
      log(f'{cfg.seeds} seeds x {done} epochs already trained; read from the store')
      return _returned(store, state, cfg.seeds, return_state)
    log(f'resuming at epoch {done} of {cfg.epochs} from the checkpoint')
  trainer = make_train(cfg, data, model)
  run_v = jax.jit(
      over_seeds(cfg, lambda s, d, n, t: trainer.run_epochs(s, d, n, t)), static_argnums=2
  )
  observe_v = jax.jit(over_seeds(cfg, trainer.observe))
  compiled = {}  # chunk length -> executable, compiled ahead of time so rates exclude it
  observables = history_lib.observables(binary=data.num_classes == 2)
  stop = None
  if cfg.stop_after_inversion:
    stop = stopping.InversionStop(cfg.seeds, observables=observables, rho=cfg.inversion_rho)
  initial_loss = None if observed is None else observed['loss'][:, :1]
  if stop is not None and observed is not None:
    stop.update(types.SimpleNamespace(**observed))
  sized = resumed is not None and resumed.chunk is not None  # chunk length fixed already

  def finished():
    return done >= cfg.epochs or (stop is not None and stop.done)

  began = time.perf_counter()
  with preemption.Deferred() as signals:
    while not finished():
      n = min(chunk, cfg.epochs - done)
      if n not in compiled:
        compiled[n] = run_v.lower(state, data, n, done).compile()
      tic = time.perf_counter()
      state, records = compiled[n](state, data, done)
      records = _real_seeds(distributed.gather(records), cfg.seeds)
      elapsed = time.perf_counter() - tic
      done += n
      store.append(records)
      initial_loss = records.loss[:, :1] if initial_loss is None else initial_loss
      _raise_if_diverged(cfg, records.loss, initial_loss, store)
      rate = n / elapsed  # epochs per second, all seeds together
      if not sized:  # size the chunks once, from the probe
        chunk = cfg.chunk_epochs or _chunk_for_rate(rate, cfg.epochs - done)
        if stop is not None and not cfg.chunk_epochs:  # a stop rule decides between chunks
          chunk = min(chunk, STOP_CHUNK_EPOCHS)
        sized = True
      store.checkpoint(_real_seeds(distributed.gather(state), cfg.seeds), done, chunk)
      log(
          f'epoch {done:>{len(str(cfg.epochs))}}/{cfg.epochs}  '
          f'{_rate(rate * cfg.seeds)} seed-epochs/s  '
          f'elapsed {_format_seconds(time.perf_counter() - began)}  '
          f'ETA {_format_seconds((cfg.epochs - done) / rate)}'
      )
      if stop is not None and stop.update(records):
        log(
            f'inversion confirmed on {", ".join(observables)} in all {cfg.seeds} seeds: '
            f'stopping at epoch {done} of {cfg.epochs}'
        )
      if distributed.any_process(signals.received is not None) and not finished():
        raise preemption.Interrupted(
            f'{signals.received or "a signal"} received: stopped at epoch {done} of '
            f'{cfg.epochs} with everything up to it saved; run the same command again to '
            f'resume.'
        )
  final = _real_seeds(distributed.gather(observe_v(state, data)), cfg.seeds)
  store.finish(final, _real_seeds(distributed.gather(state), cfg.seeds), done)
  return _returned(store, state, cfg.seeds, return_state)


def over_seeds(cfg: TrainConfig, fn: Callable) -> Callable:
  """fn(state, *shared) of one run, applied to every run of a state with a leading seed axis:
  one vmap over all seeds, or with cfg.seed_batch a loop over groups of that many seeds
  (`lax.map`), which bounds memory to one group's (a conv net's full batch on a CPU)."""
  if not cfg.seed_batch or cfg.seed_batch >= cfg.seeds:
    return _vmap_first(fn)
  return lambda state, *shared: jax.lax.map(
      lambda s: fn(s, *shared), state, batch_size=cfg.seed_batch
  )


def _vmap_first(fn: Callable) -> Callable:
  """vmap of fn over its first argument only."""
  return lambda state, *shared: jax.vmap(lambda s: fn(s, *shared))(state)


def pad_seeds_tree(tree, padding: int):
  return jax.tree.map(lambda x: pad_seeds(x, padding), tree)


def _real_seeds(tree, num_seeds: int):
  """The host arrays of `tree` without the padded runs (see `pad_seeds`)."""
  return jax.tree.map(lambda x: x[:num_seeds], tree)


def _put_like(like, host):
  """Host arrays `host` placed on the devices as the arrays of `like` are."""
  return jax.tree.map(
      lambda ref, x: distributed.put(np.asarray(x, ref.dtype), ref.sharding), like, host
  )


def _returned(store, state, num_seeds: int, return_state: bool):
  history = store.history()
  if not return_state:
    return history
  if distributed.multi_process():
    state = _real_seeds(distributed.gather(state), num_seeds)
  elif seed_padding(num_seeds):
    state = jax.tree.map(lambda x: x[:num_seeds], state)
  return history, state


def _resume(store, state, num_seeds: int, observables) -> Optional[Resumed]:
  """`store.resume` read on process 0 and broadcast to every process."""
  like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((num_seeds,) + x.shape[1:], x.dtype), state)
  resumed = store.resume(like) if distributed.is_writer() else None
  if not distributed.multi_process():
    return resumed
  found, epochs, chunk, complete = distributed.broadcast(
      np.array(
          [resumed is not None, resumed.epochs, resumed.chunk or 0, resumed.complete]
          if resumed is not None
          else [0, 0, 0, 0],
          np.int64,
      )
  )
  if not found:
    return None
  if resumed is None:  # shapes for the broadcast
    resumed = Resumed(
        jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), like),
        int(epochs),
        None,
        {k: np.zeros((num_seeds, int(epochs)), np.float32) for k in tuple(observables) + ('loss',)},
        bool(complete),
    )
  state_host, observables = distributed.broadcast((resumed.state, resumed.observables))
  return Resumed(state_host, int(epochs), int(chunk) or None, observables, bool(complete))


def _raise_if_diverged(cfg: TrainConfig, loss: np.ndarray, initial_loss: np.ndarray, store):
  """`DivergenceError` (with the history so far) if the last chunk has a non-finite loss or
  one above cfg.divergence_factor times the initial loss."""
  with np.errstate(invalid='ignore'):
    bad = ~np.isfinite(loss) | (loss > cfg.divergence_factor * initial_loss)
  if not bad.any():
    return
  store.diverged()
  history = store.history()
  if history is None:  # a process that keeps no history (store.NullStore)
    raise DivergenceError(
        f'training diverged with --lr={cfg.lr:g}; lower --lr (process 0 ' f'reports where).', None
    )
  first = history.diverged_epochs(cfg.divergence_factor)
  seeds_bad = np.flatnonzero(first >= 0)
  s, t = seeds_bad[0], first[seeds_bad[0]]
  raise DivergenceError(
      f'training diverged with --lr={cfg.lr:g}: {len(seeds_bad)} of {cfg.seeds} seeds have a '
      f'non-finite loss or one above {cfg.divergence_factor:g}x its initial value (seed {s}: '
      f'loss {history.loss[s, 0]:.3g} at epoch 0, {history.loss[s, t]:.3g} at epoch {t}); '
      f'lower --lr.',
      history,
  )
