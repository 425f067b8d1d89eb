"""Geometry kernels against the O(n^2) pair-sum definition in float64 NumPy (SPEC §4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_dynamics.engine import geometry


def reference(h, y, w=None):
  """R+, R-, D from the definition: R^2 = 1/(2 n^2) sum over all ordered pairs ||x - y||^2."""
  h = np.asarray(h, np.float64)
  keep = np.ones(len(h), bool) if w is None else np.asarray(w) > 0
  norms = np.linalg.norm(h, axis=1, keepdims=True)
  hat = np.where(norms > 0, h / np.where(norms > 0, norms, 1), 0)
  out = []
  centroids = []
  for sign in (1, -1):
    m = hat[(np.asarray(y) == sign) & keep]
    diff = m[:, None, :] - m[None, :, :]
    out.append(np.sqrt(np.sum(diff**2) / (2 * len(m) ** 2)))
    centroids.append(m.mean(axis=0))
  return out[0], out[1], np.linalg.norm(centroids[0] - centroids[1])


def random_case(seed, n=37, width=6):
  rng = np.random.default_rng(seed)
  h = rng.normal(size=(n, width)) + rng.normal(size=width)  # off-centre, like tanh features
  y = np.where(rng.random(n) < 0.4, 1, -1)
  y[:2] = [1, -1]
  return h.astype(np.float32), y.astype(np.int32)


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('jit', [True, False])
def test_matches_pair_sum_definition(seed, jit):
  h, y = random_case(seed)
  if jit:
    got = geometry.class_geometry(h, y)
  else:
    with jax.disable_jit():
      got = geometry.class_geometry(h, y)
  np.testing.assert_allclose(np.array(got), reference(h, y), rtol=1e-5, atol=1e-6)


def test_weights_equal_removing_examples():
  h, y = random_case(1, n=50)
  w = (np.arange(50) % 3 != 0).astype(np.float32)
  got = geometry.class_geometry(h, y, w)
  removed = geometry.class_geometry(h[w > 0], y[w > 0])
  np.testing.assert_allclose(np.array(got), np.array(removed), rtol=1e-5)
  np.testing.assert_allclose(np.array(got), reference(h, y, w), rtol=1e-5, atol=1e-6)


def test_vmap_over_seeds_equals_loop():
  cases = [random_case(s) for s in range(4)]
  hs, ys = np.stack([c[0] for c in cases]), np.stack([c[1] for c in cases])
  batched = jax.vmap(geometry.class_geometry)(hs, ys)
  for s, (h, y) in enumerate(cases):
    single = geometry.class_geometry(h, y)
    for a, b in zip(batched, single):
      np.testing.assert_allclose(a[s], b, rtol=1e-6)


def test_closed_forms():
  v = np.array([[0.3, -1.2, 2.0]], np.float32)
  same = np.repeat(v, 5, axis=0)
  y = np.array([1, 1, 1, -1, -1])
  r_plus, r_minus, d = geometry.class_geometry(same, y)
  assert float(r_plus) == pytest.approx(0.0, abs=1e-6)
  assert float(r_minus) == pytest.approx(0.0, abs=1e-6)
  assert float(d) == pytest.approx(0.0, abs=1e-6)
  # Two antipodal points per class: centroid at the origin, R = 1; D = 0.
  antipodal = np.array([[1, 0], [-1, 0], [0, 2], [0, -2]], np.float32)
  r_plus, r_minus, d = geometry.class_geometry(antipodal, np.array([1, 1, -1, -1]))
  assert float(r_plus) == pytest.approx(1.0, abs=1e-6)
  assert float(r_minus) == pytest.approx(1.0, abs=1e-6)
  assert float(d) == pytest.approx(0.0, abs=1e-6)
  # Two opposite single-point classes: D = 2, the diameter of the sphere.
  _, _, d = geometry.class_geometry(np.array([[0, 3.0], [0, -1.0]], np.float32), np.array([1, -1]))
  assert float(d) == pytest.approx(2.0, abs=1e-6)


def test_invariances():
  h, y = random_case(3)
  base = np.array(geometry.class_geometry(h, y))
  perm = np.random.default_rng(0).permutation(len(h))
  np.testing.assert_allclose(np.array(geometry.class_geometry(h[perm], y[perm])), base, rtol=1e-5)
  q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(h.shape[1],) * 2))
  rotated = (h @ q).astype(np.float32)
  np.testing.assert_allclose(np.array(geometry.class_geometry(rotated, y)), base, rtol=1e-5)
  scales = np.random.default_rng(2).uniform(0.1, 10, (len(h), 1)).astype(np.float32)
  np.testing.assert_allclose(np.array(geometry.class_geometry(h * scales, y)), base, rtol=1e-5)


def test_zero_vectors_do_not_produce_nan():
  h, y = random_case(4)
  h[:5] = 0.0  # e.g. dead ReLU units everywhere
  got = np.array(geometry.class_geometry(h, y))
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, reference(h, y), rtol=1e-5, atol=1e-6)
  assert np.all(np.isfinite(np.array(geometry.project_to_sphere(jnp.zeros((3, 4))))))


def test_tight_manifold_is_accurate_in_float32():
  rng = np.random.default_rng(5)
  h = (np.array([1.0, 2.0, 3.0]) + 1e-3 * rng.normal(size=(200, 3))).astype(np.float32)
  y = np.where(np.arange(200) < 100, 1, -1)
  got = np.array(geometry.class_geometry(h, y))
  np.testing.assert_allclose(got, reference(h, y), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize('seed', range(3))
def test_feature_major_layout_matches_rows(seed):
  h, y = random_case(seed)
  w = (np.arange(len(y)) % 4 != 0).astype(np.float32)
  rows = np.array(geometry.class_geometry(h, y, w))
  columns = np.array(geometry.class_geometry(h.T, y, w, feature_axis=0))
  np.testing.assert_allclose(columns, rows, rtol=1e-6)
  np.testing.assert_allclose(columns, reference(h, y, w), rtol=1e-5)
