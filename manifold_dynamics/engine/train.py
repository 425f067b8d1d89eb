"""Seed-parallel training with the observables recorded every epoch (SPEC §3-4, §8): the one
trainer, for every model.

`make_train(cfg, data, model)` returns a `Trainer` of pure functions of one run (one seed):

    init(key, data, weights) -> RunState
    run_epochs(state, data, num_epochs) -> (state, EpochRecord stacked over epochs)
    observe(state, data) -> EpochRecord
    train(key, data, weights) -> (state, EpochRecord stacked over epochs 0..T_end)

It trains a `contract.Network` (`network`): the model's own, when its module in `models/`
offers one for the task, else any Flax module through the model contract. Each epoch is one
`jax.lax.scan` step. In full batch a single forward pass over the whole training set gives the
loss, its gradient and the representations, so the geometry of epoch t is that of the
parameters *before* update t+1 (epoch 0 = initialisation). With mini-batches (SPEC §8) an epoch
is one pass over a per-seed permutation of T, drawn from the run's own key folded with the
epoch (so resuming, or training beside any other seeds, draws the same batches), the last short
batch kept; its records are measured before its first update, by a forward pass over T in
chunks of cfg.eval_batch_size. Every epoch records, on the whole of T, the loss, the K-way
argmax errors and the geometry of each measured layer: R+, R-, D for K = 2, R_mean, D_mean and
the per-class R_k and D_kl for K > 2.

Seeds are a leading array axis: `fit` runs `jax.jit(jax.vmap(...))` over them, in chunks of
epochs with a progress line between chunks, and returns a host-side `History` of arrays
shaped (seeds, epochs + 1, ...). A run trains on a weighted training set (`state.py`), so runs
with different pruned sets share one compiled program.
"""

import math
import time
import types
from typing import Callable, NamedTuple, Optional

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
    models,
    preemption,
    stopping,
)
from manifold_dynamics.engine.models.layers import ACTIVATIONS, MATMUL_PRECISIONS
from manifold_dynamics.engine.optimizers import OPTIMIZERS, make_optimizer
from manifold_dynamics.engine.state import (
    EpochRecord,
    RunState,
    TrainData,
    run_standardiser,
    targets,
)
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import scores as score_columns
from manifold_dynamics.records.history import History, Resumed


class Trainer(NamedTuple):
  init: Callable
  run_epochs: Callable
  observe: Callable
  train: Callable
  example_scores: Callable
  network: contract.Network


def check(cfg: TrainConfig):
  """A one-line error unless the engine knows cfg's model and its settings, activation,
  optimiser and precision (the names its registries hold; config.py checks the rest)."""
  models.settings(cfg)
  for name, known in (
      ('activation', ACTIVATIONS),
      ('optimizer', OPTIMIZERS),
      ('matmul_precision', MATMUL_PRECISIONS),
  ):
    value = getattr(cfg, name)
    if value not in known:
      raise UserError(f'unknown --{name}={value!r}; choose one of {", ".join(known)}.')


def network(cfg: TrainConfig, data: TrainData, model=None) -> contract.Network:
  """The network that trains `model` (a caller's Flax module under the contract), else
  cfg.model, on tasks like `data` (its K and input shape): the model's own network when it
  has one for the task, else the module through the contract (`contract.ModuleNetwork`)."""
  check(cfg)
  own = models.network(cfg, data, model)
  if own is not None:
    return own
  if model is None:
    model = models.build(cfg, data.num_classes)
  elif cfg.matmul_precision != 'float32':
    raise UserError(
        f'--matmul_precision={cfg.matmul_precision} sets the products of the models of '
        'engine/models/; a module of your own sets its own (build it from '
        'engine.models.layers Dense and Conv with precision=...), so drop it for this run.'
    )
  return contract.ModuleNetwork(model, cfg, data.num_classes, data.shape_of_input)


def measured_layers(cfg: TrainConfig, data: TrainData, model=None) -> list:
  """Names of the layers whose geometry a run records, the headline first."""
  return network(cfg, data, model).layer_names


def logits_function(cfg: TrainConfig, data: TrainData, model=None) -> Callable:
  """logits(params, x (B, N) standardised inputs) -> (B, K) of the nets a run trains (e.g. to
  test them on noisy inputs)."""
  return network(cfg, data, model).logits


BATCH_STREAM = 0x5EED  # folded into a seed's key for its mini-batch permutations


def make_train(cfg: TrainConfig, data: TrainData, model=None) -> Trainer:
  """Pure per-seed training functions for `cfg` (see module docstring) on tasks like `data`,
  training `model` if given, else cfg.model."""
  net = network(cfg, data, model)
  tx = make_optimizer(cfg)
  num_classes = data.num_classes
  minibatch = cfg.batch_size is not None and cfg.batch_size < data.num_examples
  per_layer = cfg.layers != 'first'

  def init(key, data, weights=None, standardiser=None) -> RunState:
    """A fresh run. Under vmap, pass `weights` and `standardiser` unbatched when the runs
    share them, or precomputed per run (`state.standardisers`), never computed here per run:
    each computation holds a (P, N) temporary."""
    num_examples = data.num_examples
    weights = (jnp.ones(num_examples) if weights is None else weights).astype(jnp.float32)
    if standardiser is None:
      if data.columns is not None:
        raise ValueError('pass the standardiser of the full inputs with data.columns')
      standardiser = run_standardiser(data, weights)
    scores = None
    if score_columns.groups_of(cfg.scores):
      scores = difficulty.init(num_examples, cfg.scores, len(cfg.score_epochs))
    return RunState(
        # the parameters from the seed's key itself, the batches from a key folded off it
        train=train_state.TrainState.create(apply_fn=net.forward, params=net.init(key), tx=tx),
        weights=weights,
        standardiser=standardiser,
        scores=scores,
        key=jax.random.fold_in(key, BATCH_STREAM) if minibatch else None,
    )

  def loss_of(logits, y, w):
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits, targets(y, num_classes), axis=net.class_axis
    )
    return jnp.sum(w * ce) / jnp.sum(w)

  def full_loss(params, state: RunState, data: TrainData):
    """Loss and (logits, representations) of the whole training set."""
    logits, reps = net.forward(params, state.standardiser, data, data.x_train, True)
    return loss_of(logits, data.y_train, state.weights), (logits, reps)

  def measured(params, state: RunState, data: TrainData):
    """The same, in chunks of cfg.eval_batch_size (the records of a mini-batch epoch)."""
    logits, reps = net.measure(params, state.standardiser, data, data.x_train)
    return loss_of(logits, data.y_train, state.weights), (logits, reps)

  def geometry_of(reps, data: TrainData, w):
    """(headline observables, per-layer observables or None) of the measured layers: a list
    of representations, one kernel each, or one array stacked over layers, one vmapped
    kernel."""
    geo = lambda h: contract.layer_geometry(h, data.y_train, w, num_classes, net.feature_axis)
    if isinstance(reps, (list, tuple)):
      geos = [geo(r) for r in reps]
      head, stacked = geos[0], {k: jnp.stack([g[k] for g in geos]) for k in geos[0]}
    else:
      stacked = jax.vmap(geo)(reps)
      head = jax.tree.map(lambda x: x[0], stacked)
    per = {k: v for k, v in stacked.items() if k in contract.LAYER_OBSERVABLES}
    return head, per if per_layer else None

  def record(params, state: RunState, data: TrainData, loss, logits, reps, with_test=True):
    """The observables of one epoch; `with_test` False (or a traced bool) records the test
    error as NaN instead of evaluating the test set."""
    wrong = jnp.argmax(logits, axis=net.class_axis) != targets(data.y_train, num_classes)

    def test_error():
      """The test error, and for K > 2 that of each class ((K,); NaN for a class with no test
      example)."""
      test_logits = net.predict(params, state.standardiser, data, data.x_test)
      labels = targets(data.y_test, num_classes)
      wrong_test = (jnp.argmax(test_logits, axis=net.class_axis) != labels).astype(jnp.float32)
      if num_classes == 2:
        return jnp.mean(wrong_test), None
      count = jax.ops.segment_sum(jnp.ones_like(wrong_test), labels, num_classes)
      per_class = jax.ops.segment_sum(wrong_test, labels, num_classes) / count
      return jnp.mean(wrong_test), per_class

    if with_test is True:
      test, test_class = test_error()
    else:  # an unbatched predicate stays a real branch under vmap: skipped epochs cost nothing
      nan = jnp.float32(jnp.nan)
      skipped = (nan, None if num_classes == 2 else jnp.full(num_classes, nan))
      test, test_class = jax.lax.cond(with_test, test_error, lambda: skipped)
    head, per = geometry_of(reps, data, state.weights)
    return EpochRecord(
        loss=loss,
        train_error=jnp.sum(state.weights * wrong) / jnp.sum(state.weights),
        test_error=test,
        test_error_class=test_class,
        mistakes_packed=jnp.packbits(wrong),
        layers=per,
        **head,
    )

  def sgd_epoch(state: RunState, data: TrainData, epoch):
    """One pass over a fresh permutation of T in batches of cfg.batch_size, the last short
    batch kept (padded with weight-0 examples, which change nothing)."""
    num_examples, size = data.num_examples, cfg.batch_size
    count = math.ceil(num_examples / size)
    order = jax.random.permutation(jax.random.fold_in(state.key, epoch), num_examples)
    order = jnp.concatenate([order, jnp.zeros(count * size - num_examples, order.dtype)])
    real = (jnp.arange(count * size) < num_examples).astype(jnp.float32)
    batches = (order.reshape(count, size), real.reshape(count, size))

    def step(ts, batch):
      idx, real_B = batch
      w_B = state.weights[idx] * real_B

      def loss_fn(params):
        logits, _ = net.forward(params, state.standardiser, data, data.x_train[idx], False)
        return loss_of(logits, data.y_train[idx], w_B)

      grads = jax.grad(loss_fn)(ts.params)
      # A batch of pruned examples only (weight 0) has no loss to follow: skip it.
      has_any = jnp.sum(w_B) > 0
      grads = jax.tree.map(lambda g: jnp.where(has_any, g, 0.0), grads)
      return ts.apply_gradients(grads=grads), None

    ts, _ = jax.lax.scan(step, state.train, batches)
    return ts

  def epoch_step(state: RunState, data: TrainData, epoch, with_test=True):
    params = state.train.params
    if minibatch:
      loss, (logits, reps) = measured(params, state, data)
      rec = record(params, state, data, loss, logits, reps, with_test)
      new = state.replace(train=sgd_epoch(state, data, epoch))
    else:
      (loss, (logits, reps)), grads = jax.value_and_grad(full_loss, has_aux=True)(
          params, state, data
      )
      rec = record(params, state, data, loss, logits, reps, with_test)
      new = state.replace(train=state.train.apply_gradients(grads=grads))
    if state.scores is not None:  # from this epoch's logits, before its update
      scores = difficulty.accumulate(
          state.scores,
          epoch,
          logits if net.class_axis == 0 else logits.T,
          targets(data.y_train, num_classes),
          cfg.score_epochs,
          lambda: net.grad_norms(params, state.standardiser, data),
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
    loss, (logits, reps) = (measured if minibatch else full_loss)(state.train.params, state, data)
    return record(state.train.params, state, data, loss, logits, reps)

  def train(key: jax.Array, data: TrainData, weights: Optional[jax.Array] = None):
    state = init(key, data, weights)
    state, records = run_epochs(state, data, cfg.epochs)
    final = observe(state, data)
    records = jax.tree.map(lambda r, f: jnp.concatenate([r, f[None]]), records, final)
    return state, records

  def example_scores(state: RunState, data: TrainData, names=score_columns.CAPTURED):
    """{name: (P,)} for `names` among 'el2n' and 'grand' at the current parameters."""
    return net.example_scores(state.train.params, state.standardiser, data, names)

  return Trainer(init, run_epochs, observe, train, example_scores, net)


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
  `fit` trains: one standardiser per distinct training set, the data as the network wants it
  (`contract.Network.prepare`: the fused MLP leaves out the inputs that no run uses and
  stores them in bfloat16 for bfloat16 products), and the seeds padded to a multiple of the
  device count (`pad_seeds`) and sharded over all devices, data replicated (jit then
  partitions every vmapped computation by seed). The state has cfg.seeds +
  seed_padding(cfg.seeds) runs. `keys` defaults to `seed_keys(cfg.seed, cfg.seeds)`;
  `weights` and `model` as in `fit`."""
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
  data = network(cfg, data, model).prepare(data, stats)
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
  representations), else cfg.model is built (`models/`), through its own network when it
  has one for the task (`network`).

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
    stop = stopping.make(cfg.t_star_rule, cfg.seeds, observables, cfg.inversion_rho)
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
        {
            k: np.zeros((num_seeds, int(epochs)), np.float32)
            for k in tuple(observables) + ('loss', 'train_error')
        },
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
