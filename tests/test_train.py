"""The training engine: scan vs explicit steps, vmap vs loop, chunks, masks, divergence."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.data import task as task_lib
from manifold_dynamics.engine import geometry, train
from manifold_dynamics.engine import state as state_lib
from manifold_dynamics.engine.models.mlp import MLP
from manifold_dynamics.engine.state import Standardiser, targets
from manifold_dynamics.errors import UserError
from manifold_dynamics.records.history import History
from tests.conftest import make_image_splits

CFG = TrainConfig(epochs=6, seeds=3, lr=0.1, model_settings=dict(depth=3, width=8))


@pytest.fixture(scope='module')
def data():
  x_train, y_train, x_test, y_test = make_image_splits(64, 30, shape=(6, 6))
  raw = task_lib.sources.RawSplits(x_train, y_train, x_test, y_test)
  return train.TrainData.from_task(task_lib.make_task(raw, 64))


def tree_close(a, b, rtol=1e-5, atol=1e-6):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def host_standardised(data, weights=None):
  """SPEC §1 standardisation on the host, float64, of the examples with weight > 0."""
  x = np.asarray(data.x_train, np.float64)
  keep = np.ones(len(x), bool) if weights is None else np.asarray(weights) > 0
  (_, x_train, x_test), _, _ = task_lib.standardise(x[keep], x, np.asarray(data.x_test))
  return x_train.astype(np.float32), x_test.astype(np.float32)


def test_scan_of_k_epochs_equals_k_explicit_steps(key, data):
  trainer = train.make_train(CFG, data)
  state0 = trainer.init(key, data)
  scanned, records = jax.jit(trainer.run_epochs, static_argnums=2)(state0, data, 4)
  params = state0.train.params
  model = MLP(3, 8, CFG.activation, CFG.init_scale)
  x_std, x_test_std = host_standardised(data)
  for t in range(4):
    logits, h = model.apply({'params': params}, x_std)
    labels = targets(data.y_train, 2)
    expected_geo = geometry.class_geometry(h, data.y_train)
    np.testing.assert_allclose(records.R_plus[t], expected_geo.R_plus, rtol=1e-5)
    np.testing.assert_allclose(records.D[t], expected_geo.D, rtol=1e-5)
    wrong = np.asarray(jnp.argmax(logits, -1) != labels)
    np.testing.assert_array_equal(
        np.unpackbits(np.asarray(records.mistakes_packed[t]), count=len(wrong)).astype(bool), wrong
    )
    assert float(records.train_error[t]) == pytest.approx(wrong.mean())

    test_logits, _ = model.apply({'params': params}, x_test_std)
    test_wrong = np.asarray(jnp.argmax(test_logits, -1) != targets(data.y_test, 2))
    assert float(records.test_error[t]) == pytest.approx(test_wrong.mean())

    def loss(p):
      out, _ = model.apply({'params': p}, x_std)
      return optax.softmax_cross_entropy_with_integer_labels(out, labels).mean()

    value, grads = jax.value_and_grad(loss)(params)
    assert float(records.loss[t]) == pytest.approx(float(value), rel=1e-5)
    params = jax.tree.map(lambda p, g: p - CFG.lr * g, params, grads)  # plain SGD
  tree_close(scanned.train.params, params, rtol=1e-4, atol=1e-5)


def test_vmap_over_seeds_equals_loop(data):
  trainer = train.make_train(CFG, data)
  keys = train.seed_keys(CFG.seed, CFG.seeds)
  _, batched = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, data)  # shared T
  for s in range(CFG.seeds):
    _, single = jax.jit(trainer.train)(keys[s], data)
    tree_close(jax.tree.map(lambda x: x[s], batched), single)


def test_fit_in_chunks_equals_one_scan(data):
  cfg = dataclasses.replace(CFG, epochs=7, chunk_epochs=3)
  history = train.fit(cfg, data, log=None)
  trainer = train.make_train(cfg, data)
  _, records = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(
      train.seed_keys(cfg.seed, cfg.seeds), data
  )
  assert history.R_plus.shape == (cfg.seeds, cfg.epochs + 1)
  assert history.mistakes_packed.shape == (cfg.seeds, cfg.epochs + 1, 8)
  for name in History.ARRAYS + ('mistakes_packed',):
    np.testing.assert_allclose(
        getattr(history, name),
        np.asarray(getattr(records, name)),
        rtol=1e-5,
        atol=1e-6,
        err_msg=name,
    )


def test_epoch_zero_is_the_initialisation(key, data):
  trainer = train.make_train(CFG, data)
  state = trainer.init(key, data)
  _, records = trainer.train(key, data)
  first = trainer.observe(state, data)
  tree_close(jax.tree.map(lambda r: r[0], records), first)


def test_learns_and_records_bounded_observables(data):
  history = train.fit(dataclasses.replace(CFG, epochs=60, lr=0.5), data, log=None)
  assert history.train_error[:, -1].mean() < history.train_error[:, 0].mean()
  assert history.loss[:, -1].mean() < history.loss[:, 0].mean()
  for name in ('R_plus', 'R_minus'):
    assert np.all((getattr(history, name) >= 0) & (getattr(history, name) <= 1 + 1e-6))
  assert np.all((history.D >= 0) & (history.D <= 2 + 1e-6))
  masks = history.mistakes()
  np.testing.assert_allclose(masks.mean(axis=-1), history.train_error, atol=1e-6)


@pytest.mark.parametrize('variant', [{}, {'batch_size': 16}], ids=['fast_path', 'contract'])
def test_no_retrace_within_a_fit(data, monkeypatch, variant):
  traces = []
  original = train.make_train

  def counting_make_train(cfg, *args):
    trainer = original(cfg, *args)

    def run_epochs(state, data, n, first_epoch=0):  # traced once per compilation
      traces.append(n)
      return trainer.run_epochs(state, data, n, first_epoch)

    return trainer._replace(run_epochs=run_epochs)

  monkeypatch.setattr(train, 'make_train', counting_make_train)
  train.fit(dataclasses.replace(CFG, epochs=12, chunk_epochs=3, **variant), data, log=None)
  assert traces == [3]  # four chunks of 3 epochs, one compilation


@pytest.mark.parametrize('optimizer', ['sgd', 'momentum', 'sgd_wd', 'adam'])
def test_every_optimizer_trains(data, optimizer):
  cfg = dataclasses.replace(
      CFG, optimizer=optimizer, lr=0.01 if optimizer == 'adam' else 0.1, epochs=30
  )
  history = train.fit(cfg, data, log=None)
  assert np.all(np.isfinite(history.loss))
  assert history.loss[:, -1].mean() < history.loss[:, 0].mean()


def test_weight_decay_and_momentum_follow_pytorch(key, data):
  """One step of each, by hand: sgd_wd: theta - lr (g + lambda theta); momentum: v = mu v + g."""
  for optimizer in ('sgd_wd', 'momentum'):
    cfg = dataclasses.replace(CFG, optimizer=optimizer, weight_decay=0.05, momentum=0.5)
    trainer = train.make_train(cfg, data)
    state = trainer.init(key, data)
    after, _ = trainer.run_epochs(state, data, 2)
    model = MLP(3, 8)
    labels = targets(data.y_train, 2)
    x_std, _ = host_standardised(data)

    def loss(p):
      out, _ = model.apply({'params': p}, x_std)
      return optax.softmax_cross_entropy_with_integer_labels(out, labels).mean()

    p, v = state.train.params, jax.tree.map(jnp.zeros_like, state.train.params)
    for _ in range(2):
      g = jax.grad(loss)(p)
      if optimizer == 'sgd_wd':
        p = jax.tree.map(lambda p_, g_: p_ - cfg.lr * (g_ + cfg.weight_decay * p_), p, g)
      else:
        v = jax.tree.map(lambda v_, g_: cfg.momentum * v_ + g_, v, g)
        p = jax.tree.map(lambda p_, v_: p_ - cfg.lr * v_, p, v)
    tree_close(after.train.params, p, rtol=1e-4, atol=1e-5)


def test_divergence_raises_with_partial_history(data):
  cfg = dataclasses.replace(
      CFG, activation='relu', lr=1e12, epochs=40, chunk_epochs=10, init_scale=5.0
  )
  with pytest.raises(train.DivergenceError, match='lower --lr') as err:
    train.fit(cfg, data, log=None)
  history = err.value.history
  assert history.num_seeds == cfg.seeds and history.R_plus.shape[1] % 10 == 0
  assert np.any(history.diverged_epochs() >= 0)


def test_finite_but_exploding_loss_is_divergence(data):
  """With tanh a huge lr keeps everything finite while the loss oscillates far above ln 2."""
  cfg = dataclasses.replace(CFG.with_model(depth=2), lr=1e4, epochs=20, chunk_epochs=10)
  with pytest.raises(train.DivergenceError, match='above 100x its initial value'):
    train.fit(cfg, data, log=None)
  history = train.fit(dataclasses.replace(cfg, lr=0.5, divergence_factor=1e9), data, log=None)
  assert np.all(history.diverged_epochs(100.0) == -1)


def test_progress_lines(data):
  lines = []
  train.fit(dataclasses.replace(CFG, epochs=10, chunk_epochs=5), data, log=lines.append)
  assert len(lines) == 2
  assert lines[-1].startswith('epoch 10/10') and 'seed-epochs/s' in lines[-1] and 'ETA' in lines[-1]


SHARDED = r"""
import dataclasses, sys
import jax, numpy as np
assert jax.device_count() == 2, jax.devices()
sys.path.insert(0, %(root)r)
from tests.test_train import CFG, make_image_splits, task_lib, train
x_train, y_train, x_test, y_test = make_image_splits(64, 30, shape=(6, 6))
raw = task_lib.sources.RawSplits(x_train, y_train, x_test, y_test)
data = train.TrainData.from_task(task_lib.make_task(raw, 64))
cfg = dataclasses.replace(CFG, seeds=4, epochs=5)
state, _ = train.start(cfg, data)
assert len(state.train.step.sharding.device_set) == 2
history = train.fit(cfg, data, log=None)
pruned = train.fit(cfg, data, log=None, weights=(np.arange(4 * 64).reshape(4, 64) %% 3 > 0))
# 3 seeds on 2 devices: padded to 4, the extra run dropped from everything returned
lines = []
odd, odd_state = train.fit(dataclasses.replace(cfg, seeds=3), data, log=lines.append,
                           return_state=True)
assert odd.R_plus.shape == (3, 6) and odd_state.weights.shape == (3, 64), odd.R_plus.shape
assert any('padded to 4' in line for line in lines), lines
minibatch = train.fit(dataclasses.replace(cfg, batch_size=16), data, log=None)  # the contract
np.save(sys.argv[1], np.stack([history.R_plus, pruned.R_plus, minibatch.R_plus]))
np.save(sys.argv[2], odd.R_plus)
"""


@pytest.mark.slow  # heavy end to end: make test-all
def test_seeds_shard_over_devices(data, tmp_path):
  """Two forced host devices: the sharded run equals the single-device run (the fast path,
  pruned runs and mini-batches through the contract), and 3 seeds (padded to 4, then dropped)
  equal the first 3 of the single-device run."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu')
  out, odd = str(tmp_path / 'r.npy'), str(tmp_path / 'odd.npy')
  subprocess.run(
      [sys.executable, '-c', SHARDED % {'root': root}, out, odd], check=True, env=env, cwd=root
  )
  cfg = dataclasses.replace(CFG, seeds=4, epochs=5)
  single = train.fit(cfg, data, log=None)
  pruned = train.fit(cfg, data, log=None, weights=(np.arange(4 * 64).reshape(4, 64) % 3 > 0))
  minibatch = train.fit(dataclasses.replace(cfg, batch_size=16), data, log=None)
  np.testing.assert_allclose(
      np.load(out),
      np.stack([single.R_plus, pruned.R_plus, minibatch.R_plus]),
      rtol=1e-5,
      atol=1e-6,
  )
  np.testing.assert_allclose(np.load(odd), single.R_plus[:3], rtol=1e-5, atol=1e-6)


def test_weights_equal_training_on_the_subset(data):
  """A run on T with weights 0 on some examples is the run on T without them: same loss,
  gradients, standardisation (recomputed on the kept examples) and geometry."""
  keep = np.ones(64, np.float32)
  keep[::5] = 0.0
  cfg = dataclasses.replace(CFG, seeds=1, epochs=5)
  weighted = train.fit(cfg, data, log=None, weights=keep)
  kept = keep > 0
  subset = train.TrainData(data.x_train[kept], data.y_train[kept], data.x_test, data.y_test)
  alone = train.fit(cfg, subset, log=None)
  for name in ('R_plus', 'R_minus', 'D', 'loss', 'train_error', 'test_error'):
    np.testing.assert_allclose(
        getattr(weighted, name), getattr(alone, name), rtol=1e-4, atol=1e-5, err_msg=name
    )
  np.testing.assert_array_equal(weighted.mistakes()[..., kept], alone.mistakes())


def test_per_run_weights_under_vmap_equal_separate_runs(data):
  rng = np.random.default_rng(0)
  weights = (rng.random((3, 64)) > 0.3).astype(np.float32)
  cfg = dataclasses.replace(CFG, epochs=4)
  together = train.fit(cfg, data, log=None, weights=weights)
  keys = train.seed_keys(cfg.seed, cfg.seeds)
  for s in range(3):
    alone = train.fit(
        dataclasses.replace(cfg, seeds=1), data, log=None, keys=keys[s : s + 1], weights=weights[s]
    )
    np.testing.assert_allclose(together.R_plus[s], alone.R_plus[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together.loss[s], alone.loss[0], rtol=1e-5, atol=1e-6)


def test_standardiser_matches_host_and_maps_constant_pixels_to_zero(data):
  weights = np.ones(64, np.float32)
  weights[:10] = 0
  shift, scale = state_lib.weighted_standardiser(data.x_train, jnp.asarray(weights))
  x = np.asarray(data.x_train, np.float64)[10:]
  mean, std = x.mean(0), x.std(0)
  np.testing.assert_allclose(shift, mean, atol=1e-6)
  constant = std == 0
  assert constant.any() and np.all(np.asarray(scale)[constant] == 0)
  np.testing.assert_allclose(np.asarray(scale)[~constant], 1 / std[~constant], rtol=1e-4)


def test_empty_training_set_is_refused(data):
  with pytest.raises(train.UserError, match='at least one training example'):
    train.fit(CFG, data, log=None, weights=np.zeros(64, np.float32))


def test_every_layer_observables_match_the_first_and_a_direct_computation(key, data):
  cfg = dataclasses.replace(CFG.with_model(depth=4), layers='all', epochs=5, chunk_epochs=2)
  history, states = train.fit(cfg, data, log=None, return_state=True)
  plain = train.fit(dataclasses.replace(cfg, layers='first'), data, log=None)
  assert history.layer_R_plus.shape == (CFG.seeds, 6, 3)
  for name in ('R_plus', 'R_minus', 'D'):  # layer 1 is the paper's representation
    np.testing.assert_array_equal(getattr(history, f'layer_{name}')[..., 0], getattr(history, name))
    # the same numbers up to float32 rounding (the vmapped kernel fuses differently)
    np.testing.assert_allclose(getattr(history, name), getattr(plain, name), rtol=1e-6)
  for name in ('loss', 'train_error', 'mistakes_packed'):  # the training itself is untouched
    np.testing.assert_array_equal(getattr(history, name), getattr(plain, name))
  # The last epoch of seed 0, layer by layer, from the final parameters.
  params = jax.tree.map(lambda x: x[0], states.train.params)
  x_std, _ = host_standardised(data)
  z = jnp.asarray(x_std)
  for layer in range(3):
    kernel, bias = params[f'hidden_{layer}']['kernel'], params[f'hidden_{layer}']['bias']
    z = jnp.tanh(z @ kernel + bias[None, :])
    geo = geometry.class_geometry(z, data.y_train)
    np.testing.assert_allclose(
        [history.layer_R_plus[0, -1, layer], history.layer_D[0, -1, layer]],
        [geo.R_plus, geo.D],
        rtol=2e-4,
        atol=2e-5,
    )


def test_constant_inputs_are_left_out_exactly(data):
  """`fit` trains on the inputs that vary on T only; the records and every parameter, the
  rows of the unused inputs included (weight decay still shrinks them), equal training on
  all inputs."""
  cfg = dataclasses.replace(CFG, optimizer='sgd_wd', epochs=5)
  state, prepared = train.start(cfg, data)
  constant = np.flatnonzero(np.ptp(np.asarray(data.x_train), axis=0) == 0)
  assert len(constant) == 6  # the constant top row of the 6 x 6 test images
  np.testing.assert_array_equal(np.asarray(prepared.columns), np.setdiff1d(np.arange(36), constant))
  assert prepared.x_train.shape == (64, 30) and prepared.x_test.shape == (30, 30)

  history, final = train.fit(cfg, data, log=None, return_state=True)
  trainer = train.make_train(cfg, data)
  keys = train.seed_keys(cfg.seed, cfg.seeds)
  expected_state, records = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, data)
  for name in History.ARRAYS + ('mistakes_packed',):
    np.testing.assert_allclose(
        getattr(history, name),
        np.asarray(getattr(records, name)),
        rtol=1e-5,
        atol=1e-6,
        err_msg=name,
    )
  tree_close(final.train.params, expected_state.train.params)
  kernel = np.asarray(final.train.params['hidden_0']['kernel'])
  initial = np.asarray(state.train.params['hidden_0']['kernel'])
  decay = (1 - cfg.lr * cfg.weight_decay) ** cfg.epochs
  np.testing.assert_allclose(kernel[:, constant], initial[:, constant] * decay, rtol=1e-5)


def test_an_input_used_by_any_run_is_kept(data):
  x = np.asarray(data.x_train)
  scale = np.ones((2, x.shape[1]), np.float32)
  scale[0, [3, 7]] = 0  # run 0 has inputs 3 and 7 constant, run 1 only input 7
  scale[1, 7] = 0
  stats = Standardiser(np.zeros_like(scale), scale)
  prepared = data.without_constant_inputs(stats)
  np.testing.assert_array_equal(np.asarray(prepared.columns), np.delete(np.arange(x.shape[1]), 7))
  np.testing.assert_array_equal(np.asarray(prepared.x_train), np.delete(x, 7, axis=1))


def test_bfloat16_products_train_close_to_float32(data):
  cfg = dataclasses.replace(CFG, epochs=8)
  full = train.fit(cfg, data, log=None)
  low_cfg = dataclasses.replace(cfg, matmul_precision='bfloat16')
  low = train.fit(low_cfg, data, log=None)
  assert np.all(np.isfinite(low.R_plus)) and not np.array_equal(low.R_plus, full.R_plus)
  np.testing.assert_allclose(low.R_plus, full.R_plus, atol=2e-2)
  np.testing.assert_allclose(low.loss, full.loss, rtol=2e-2)
  # fit stores the inputs in bfloat16 once; the products would round them the same way.
  state, inputs32 = train.start(cfg, data)
  _, inputs16 = train.start(low_cfg, data)
  assert inputs16.x_train.dtype == jnp.bfloat16 and inputs16.x_test.dtype == jnp.bfloat16
  run = jax.jit(
      jax.vmap(train.make_train(low_cfg, data).run_epochs, in_axes=(0, None, None)),
      static_argnums=2,
  )
  _, records32 = run(state, inputs32, 4)
  _, records16 = run(state, inputs16, 4)
  for name in History.ARRAYS:
    np.testing.assert_array_equal(getattr(records16, name), getattr(records32, name), err_msg=name)


def test_unknown_matmul_precision_is_refused():
  with pytest.raises(
      UserError, match="unknown --matmul_precision='float16'; choose one of float32"
  ):
    train.check(TrainConfig(matmul_precision='float16'))
