"""The MLP: shapes, representation, initialisation of SPEC §2."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_dynamics import models


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
        assert leaf.var() == pytest.approx(bound ** 2 / 3, rel=0.1)


def test_activations():
  x = jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(models.ACTIVATIONS['leaky_relu'](x), [-0.2, 0.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(models.ACTIVATIONS['relu'](x), [0.0, 0.0, 3.0])
  np.testing.assert_allclose(models.ACTIVATIONS['identity'](x), x)
  np.testing.assert_allclose(models.ACTIVATIONS['silu'](x), x / (1 + np.exp(-x)), rtol=1e-6)
