"""The finite-size fit of phi(P), the P values of a sweep, and the parameter count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from manifold_dynamics.analysis import finite_size
from manifold_dynamics.engine.models.layers import count_params
from manifold_dynamics.engine.models.mlp import MLP
from manifold_dynamics.errors import UserError
from manifold_dynamics.studies import scaling


def synthetic(phi_inf=0.1, P0=400.0, gamma=0.6, seeds=20, noise=0.002, seed=0):
  rng = np.random.default_rng(seed)
  sizes = [1024, 2048, 4096, 8192, 16384, 32768, 60000]
  phis = [finite_size.phi_model(P, phi_inf, P0, gamma) + rng.normal(0, noise, seeds) for P in sizes]
  return sizes, phis


def test_the_fit_recovers_known_parameters_from_noisy_phi():
  sizes, phis = synthetic()
  fit = finite_size.fit_finite_size(sizes, phis, bootstrap=100)
  assert fit.converged and not fit.message
  assert fit.phi_inf == pytest.approx(0.1, rel=0.05)
  assert fit.gamma == pytest.approx(0.6, rel=0.25)
  assert fit.P0 == pytest.approx(400.0, rel=0.5)
  lo, hi = fit.intervals['phi_inf']
  assert lo < 0.1 < hi and hi - lo < 0.02
  assert fit.bootstrap_converged >= 90


def test_noise_free_data_is_fitted_exactly():
  sizes, phis = synthetic(phi_inf=0.3, P0=800.0, gamma=1.2, seeds=1, noise=0.0)
  fit = finite_size.fit_finite_size(sizes, phis, bootstrap=0)
  assert (fit.phi_inf, fit.P0, fit.gamma) == pytest.approx((0.3, 800.0, 1.2), rel=1e-3)


def test_too_few_sizes_and_failed_fits_are_reported_not_raised(monkeypatch):
  sizes, phis = synthetic()
  fit = finite_size.fit_finite_size(sizes[:2], phis[:2])
  assert not fit.converged and 'needs at least 3 values of P' in fit.message
  assert np.isnan(fit.phi_inf)

  def fail(*args, **kwargs):
    raise RuntimeError('Optimal parameters not found')

  monkeypatch.setattr(scipy.optimize, 'curve_fit', fail)
  fit = finite_size.fit_finite_size(sizes, phis)
  assert not fit.converged and 'did not converge' in fit.message


def test_train_sizes_default_to_powers_of_two_and_the_whole_split():
  assert scaling.train_sizes_for('mnist', None) == [1024, 2048, 4096, 8192, 16384, 32768, 60000]
  assert scaling.train_sizes_for('cifar10', None)[-1] == 50000
  assert scaling.train_sizes_for('mnist', [4096, 1024, 4096]) == [1024, 4096]
  with pytest.raises(UserError, match='P=70000 is larger than the mnist train split'):
    scaling.train_sizes_for('mnist', [1024, 70000])
  with pytest.raises(UserError, match='must be positive'):
    scaling.train_sizes_for('mnist', [0, 1024])


@pytest.mark.parametrize('depth,width', [(2, 20), (4, 10), (8, 80)])
def test_num_params_counts_the_mlp(depth, width):
  params = MLP(depth, width).init(jax.random.PRNGKey(0), jnp.zeros((1, 784)))
  assert count_params(MLP(depth, width), (784,)) == sum(x.size for x in jax.tree.leaves(params))
