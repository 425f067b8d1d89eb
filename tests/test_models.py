"""The MLP: shapes, representation, initialisation of SPEC §2."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_dynamics.engine import models


@pytest.mark.parametrize('depth', [2, 3, 4])
def test_shapes_and_first_hidden_layer(key, depth):
  model = models.MLP(depth=depth, width=7, activation='tanh')
  x = jax.random.normal(key, (5, 12))
  params = model.init(key, x)['params']
  logits, h = model.apply({'params': params}, x)
  assert logits.shape == (5, 2) and h.shape == (5, 7)
  first = params['hidden_0']
  np.testing.assert_allclose(h, jnp.tanh(x @ first['kernel'] + first['bias'][None]), rtol=1e-6)
  assert len(params) == depth


@pytest.mark.parametrize('scale', [1.0, 3.0])
def test_init_is_fan_in_uniform(key, scale):
  model = models.MLP(depth=3, width=200, init_scale=scale)
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
  np.testing.assert_allclose(models.ACTIVATIONS['leaky_relu'](x), [-0.2, 0.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(models.ACTIVATIONS['relu'](x), [0.0, 0.0, 3.0])
  np.testing.assert_allclose(models.ACTIVATIONS['identity'](x), x)
  np.testing.assert_allclose(models.ACTIVATIONS['silu'](x), x / (1 + np.exp(-x)), rtol=1e-6)


def _standardiser(key, num_inputs, constant=(0, 3, 4)):
  shift = jax.random.uniform(key, (num_inputs,))
  scale = jnp.ones(num_inputs).at[jnp.array(constant)].set(0.0) * 2.0
  return models.Standardiser(shift, scale)


@pytest.mark.parametrize('depth', [2, 4])
def test_feature_major_is_the_same_network_transposed(key, depth):
  x = jax.random.normal(key, (9, 12))
  stats = _standardiser(jax.random.PRNGKey(1), 12)
  rows = models.MLP(depth=depth, width=5)
  params = rows.init(key, x)
  logits, h = rows.apply(params, x, stats)
  logits_t, h_t = models.MLP(depth=depth, width=5, feature_major=True).apply(params, x, stats)
  assert logits_t.shape == (2, 9) and h_t.shape == (5, 9)
  np.testing.assert_allclose(logits_t.T, logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(h_t.T, h, rtol=1e-5, atol=1e-6)


def test_columns_leave_out_zero_scale_inputs_exactly(key):
  """Inputs scaled by 0 contribute nothing: leaving them out of x (columns) gives the same
  outputs and gradients, and the kernel keeps its N rows (zero gradient on the unused ones)."""
  x = jax.random.normal(key, (9, 12))
  stats = _standardiser(jax.random.PRNGKey(1), 12)
  used = jnp.array([i for i in range(12) if i not in (0, 3, 4)])
  model = models.MLP(depth=3, width=5, feature_major=True)
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
  low = models.dot_general(a, b, (1, 0), 'bfloat16')
  full = models.dot_general(a, b, (1, 0), 'float32')
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, rounded(a) @ rounded(b), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(full, exact, rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(low) - exact).max() > 1e-3  # bfloat16 keeps 8 bits of mantissa
