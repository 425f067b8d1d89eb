"""The models: the MLP's shapes, representation and initialisation (SPEC §2), the layers, the
registry of models (each one file with its settings), and the ViT."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.engine import contract, models
from manifold_dynamics.engine.models import layers, mlp, vit
from manifold_dynamics.engine.state import Standardiser
from manifold_dynamics.errors import UserError


@pytest.mark.parametrize('depth', [2, 3, 4])
def test_shapes_and_first_hidden_layer(key, depth):
  model = mlp.MLP(depth=depth, width=7, activation='tanh')
  x = jax.random.normal(key, (5, 12))
  params = model.init(key, x)['params']
  logits, h = model.apply({'params': params}, x)
  assert logits.shape == (5, 2) and h.shape == (5, 7)
  first = params['hidden_0']
  np.testing.assert_allclose(h, jnp.tanh(x @ first['kernel'] + first['bias'][None]), rtol=1e-6)
  assert len(params) == depth


@pytest.mark.parametrize('scale', [1.0, 3.0])
def test_init_is_fan_in_uniform(key, scale):
  model = mlp.MLP(depth=3, width=200, init_scale=scale)
  params = model.init(key, jnp.zeros((1, 400)))['params']
  for name, fan_in in (('hidden_0', 400), ('hidden_1', 200), ('readout', 200)):
    bound = scale / np.sqrt(fan_in)
    for leaf in params[name].values():
      leaf = np.asarray(leaf)
      assert np.all(np.abs(leaf) <= bound)
      if leaf.size > 1000:  # fills the interval, uniformly: variance bound^2 / 3
        assert np.abs(leaf).max() > 0.95 * bound
        assert leaf.var() == pytest.approx(bound**2 / 3, rel=0.1)


def test_activations():
  x = jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(layers.ACTIVATIONS['leaky_relu'](x), [-0.2, 0.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(layers.ACTIVATIONS['relu'](x), [0.0, 0.0, 3.0])
  np.testing.assert_allclose(layers.ACTIVATIONS['identity'](x), x)
  np.testing.assert_allclose(layers.ACTIVATIONS['silu'](x), x / (1 + np.exp(-x)), rtol=1e-6)


def _standardiser(key, num_inputs, constant=(0, 3, 4)):
  shift = jax.random.uniform(key, (num_inputs,))
  scale = jnp.ones(num_inputs).at[jnp.array(constant)].set(0.0) * 2.0
  return Standardiser(shift, scale)


@pytest.mark.parametrize('depth', [2, 4])
def test_feature_major_is_the_same_network_transposed(key, depth):
  x = jax.random.normal(key, (9, 12))
  stats = _standardiser(jax.random.PRNGKey(1), 12)
  rows = mlp.MLP(depth=depth, width=5)
  params = rows.init(key, x)
  logits, h = rows.apply(params, x, stats)
  logits_t, h_t = mlp.MLP(depth=depth, width=5, feature_major=True).apply(params, x, stats)
  assert logits_t.shape == (2, 9) and h_t.shape == (5, 9)
  np.testing.assert_allclose(logits_t.T, logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(h_t.T, h, rtol=1e-5, atol=1e-6)


def test_columns_leave_out_zero_scale_inputs_exactly(key):
  """Inputs scaled by 0 contribute nothing: leaving them out of x (columns) gives the same
  outputs and gradients, and the kernel keeps its N rows (zero gradient on the unused ones)."""
  x = jax.random.normal(key, (9, 12))
  stats = _standardiser(jax.random.PRNGKey(1), 12)
  used = jnp.array([i for i in range(12) if i not in (0, 3, 4)])
  model = mlp.MLP(depth=3, width=5, feature_major=True)
  params = model.init(key, x)

  def loss(p, x, columns):
    logits, _ = model.apply(p, x, stats, columns)
    return jnp.sum(jnp.square(logits))

  full, grads_full = jax.value_and_grad(loss)(params, x, None)
  part, grads_part = jax.value_and_grad(loss)(params, x[:, used], used)
  assert float(part) == pytest.approx(float(full), rel=1e-6)
  for a, b in zip(jax.tree.leaves(grads_part), jax.tree.leaves(grads_full)):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  kernel_grad = np.asarray(grads_part['params']['hidden_0']['kernel'])
  assert not np.any(kernel_grad[[0, 3, 4]])


def test_bfloat16_precision_rounds_the_operands(key):
  a = jax.random.normal(key, (6, 40))
  b = jax.random.normal(jax.random.PRNGKey(1), (40, 3))
  rounded = lambda z: np.asarray(z.astype(jnp.bfloat16).astype(jnp.float32), np.float64)
  exact = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
  low = layers.dot_general(a, b, (1, 0), 'bfloat16')
  full = layers.dot_general(a, b, (1, 0), 'float32')
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, rounded(a) @ rounded(b), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(full, exact, rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(low) - exact).max() > 1e-3  # bfloat16 keeps 8 bits of mantissa


# --- the registry: a model is one file --------------------------------------------------------


@pytest.mark.parametrize('name', models.NAMES)
def test_every_registered_model_builds_labels_and_sows(name):
  cfg = TrainConfig(model=name)
  settings = models.settings(cfg)
  assert models.label(cfg) == settings.label(cfg) and cfg.activation in models.label(cfg)
  assert set(models.resolved(cfg)) == {f.name for f in dataclasses.fields(settings)}
  shape = (8, 8, 1)
  info = contract.inspect(models.build(cfg, 10), shape, 10)  # logits (B, 10), sown layers
  assert info.layers and all(np.prod(layer.shape) > 0 for layer in info.layers)
  for flag in models.flags_of(name):
    assert flag.startswith(type(settings).flag_prefix)


def test_a_models_settings_are_checked_by_the_model():
  with pytest.raises(UserError, match="--model=vit has no setting 'width'; its settings are"):
    models.settings(TrainConfig(model='vit', model_settings=dict(width=3)))
  with pytest.raises(UserError, match='--vit_heads=3 must divide --vit_dim=32'):
    models.settings(TrainConfig(model='vit', model_settings=dict(heads=3)))
  with pytest.raises(UserError, match="unknown --model='transformer'; choose one of mlp"):
    models.settings(TrainConfig(model='transformer'))
  with pytest.raises(UserError, match='--depth must be >= 2'):
    models.settings(TrainConfig(model_settings=dict(depth=1)))


def test_the_vit_sows_its_tokens_and_pools(key):
  model = vit.ViT(patch=4, dim=8, depth=2, heads=2, num_outputs=3)
  x = jax.random.normal(key, (5, 8, 12, 2))
  params = model.init(key, x)['params']
  logits, sown = model.apply({'params': params}, x, mutable=['intermediates'])
  assert logits.shape == (5, 3)
  found = sown['intermediates']
  tokens = (8 // 4) * (12 // 4)
  assert found['embed'][0].shape == (5, tokens, 8)
  assert [b.shape for b in found['block']] == [(5, tokens, 8)] * 2
  assert found['pool'][0].shape == (5, 8)
  # the patch embedding is one dense layer on each p x p patch, flattened (row, column, channel)
  patch = np.asarray(x[:, 4:8, 0:4, :]).reshape(5, -1)  # patch (1, 0): second row, first column
  embed = params['patches']
  expected = patch @ np.asarray(embed['kernel']) + np.asarray(embed['bias'])
  expected += np.asarray(params['position'])[(12 // 4) * 1 + 0]
  np.testing.assert_allclose(found['embed'][0][:, 3], expected, rtol=1e-5, atol=1e-5)
  # each example alone: nothing couples the examples of a batch (nor the seeds under vmap)
  alone = model.apply({'params': params}, x[2:3])
  np.testing.assert_allclose(alone[0], logits[2], rtol=1e-5, atol=1e-6)


def test_a_vit_patch_that_does_not_divide_the_image_is_refused(key):
  with pytest.raises(UserError, match='--vit_patch=5 must divide the image size 8x8'):
    vit.ViT(patch=5, dim=8, heads=2).init(key, jnp.zeros((1, 8, 8, 1)))
