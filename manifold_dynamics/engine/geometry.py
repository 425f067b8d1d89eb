"""Geometry of the two class manifolds (SPEC §4), in O(P H) per seed.

The representations h are projected on the unit sphere, h_hat = h / ||h||; the class manifolds
M+ and M- are the projected training examples with y = +1 and y = -1. For a manifold M of n
points the gyration radius is

    R^2 = 1 / (2 n^2) * sum_{x, y in M} ||x - y||^2 = 1/n * sum_{x in M} ||x - c||^2,

c the centroid, so it is computed from the centroid without any n x n matrix. D is the distance
between the two centroids. Examples carry a non-negative weight (1 = in the training set,
0 = pruned), so every pruned set of the same slice shares one compiled kernel.

A zero representation (possible with ReLU or a linear net) has no direction: it is mapped to
the origin instead of NaN, and still counts as a point of its manifold.

Representations are (P, H) rows, or (H, P) columns with `feature_axis=0` (the training engine's
feature-major layout, `models.MLP(feature_major=True)`).

K classes (SPEC §8): `multiclass_geometry` gives R_k of every class manifold M_k, the distance
D_kl between every pair of centroids (k < l, in `numpy.triu_indices(K, 1)` order) and the
summary curves R_mean (mean of R_k) and D_mean (mean of D_kl), in two passes over (P, H)
whatever K. For K = 2 they are R+, R-, D up to float rounding (`class_geometry` is the exact
binary kernel).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ClassGeometry(NamedTuple):
  """R+, R- and D of one set of representations (scalars, or arrays under vmap)."""

  R_plus: jax.Array  # gyration radius of M+ (unit-sphere units, in [0, 1])
  R_minus: jax.Array  # gyration radius of M- (in [0, 1])
  D: jax.Array  # distance between the centroids of M+ and M- (in [0, 2])


def project_to_sphere(h: jax.Array, feature_axis: int = -1) -> jax.Array:
  """h / ||h|| along `feature_axis`; representations equal to zero stay zero."""
  norm = jnp.linalg.norm(h, axis=feature_axis, keepdims=True)
  safe_norm = jnp.where(norm > 0, norm, 1.0)
  return jnp.where(norm > 0, h / safe_norm, 0.0)


def _centroid_and_radius(x: jax.Array, w_P: jax.Array, feature_axis: int):
  """Weighted centroid (H,) and gyration radius () of the P points of x, (P, H) or (H, P)."""
  example_axis = 1 if feature_axis % 2 == 0 else 0
  total = jnp.sum(w_P)
  centroid_H = jnp.tensordot(w_P, x, axes=(0, example_axis)) / total
  # Two passes (distance to the centroid) rather than 1 - ||c||^2: no cancellation in float32
  # when the manifold is tight.
  sq_dist_P = jnp.sum(jnp.square(x - jnp.expand_dims(centroid_H, example_axis)), axis=feature_axis)
  return centroid_H, jnp.sqrt((w_P @ sq_dist_P) / total)


@functools.partial(jax.jit, static_argnames='feature_axis')
def class_geometry(
    h: jax.Array, y_P: jax.Array, w_P: jax.Array = None, feature_axis: int = -1
) -> ClassGeometry:
  """R+, R-, D of the projected representations h of examples with labels y in {+1, -1}.

  Args:
    h: raw (unnormalised) representations of the P training examples, (P, H), or (H, P) with
      feature_axis=0.
    y_P: labels, +1 or -1.
    w_P: optional non-negative weight per example (1 = in the set); default all ones.
    feature_axis: the axis of h holding the H features (-1 or 1: rows; 0: columns).
  """
  if w_P is None:
    w_P = jnp.ones(y_P.shape, h.dtype)
  h_hat = project_to_sphere(h, feature_axis)
  w_P = w_P.astype(h_hat.dtype)
  c_plus_H, r_plus = _centroid_and_radius(h_hat, jnp.where(y_P > 0, w_P, 0.0), feature_axis)
  c_minus_H, r_minus = _centroid_and_radius(h_hat, jnp.where(y_P < 0, w_P, 0.0), feature_axis)
  return ClassGeometry(r_plus, r_minus, jnp.linalg.norm(c_plus_H - c_minus_H))


class MultiClassGeometry(NamedTuple):
  """Geometry of K class manifolds (arrays gain leading axes under vmap)."""

  R_class: jax.Array  # (K,) gyration radius of each M_k
  D_class: jax.Array  # (K (K - 1) / 2,) centroid distances D_kl, k < l (triu_indices order)
  R_mean: jax.Array  # () mean over k of R_k
  D_mean: jax.Array  # () mean over pairs k < l of D_kl


@functools.partial(jax.jit, static_argnames=('num_classes', 'feature_axis'))
def multiclass_geometry(
    h: jax.Array,
    labels_P: jax.Array,
    num_classes: int,
    w_P: jax.Array = None,
    feature_axis: int = -1,
) -> MultiClassGeometry:
  """R_k, D_kl, R_mean, D_mean of the projected representations h of examples of classes
  labels_P in [0, K), weighted by w_P (default all ones), h (P, H) or (H, P) with
  feature_axis=0. Every class must have positive total weight."""
  h_hat = project_to_sphere(h, feature_axis)
  if feature_axis % 2 == 0:
    h_hat = h_hat.T  # (P, H)
  w_P = jnp.ones(labels_P.shape, h_hat.dtype) if w_P is None else w_P.astype(h_hat.dtype)
  onehot_KxP = jax.nn.one_hot(labels_P, num_classes, dtype=h_hat.dtype, axis=0) * w_P[None]
  totals_K = jnp.sum(onehot_KxP, axis=1)
  hi = jax.lax.Precision.HIGHEST
  centroids_KxH = jnp.dot(onehot_KxP, h_hat, precision=hi) / totals_K[:, None]
  sq_dist_P = jnp.sum(jnp.square(h_hat - centroids_KxH[labels_P]), axis=1)
  r_K = jnp.sqrt(jnp.dot(onehot_KxP, sq_dist_P, precision=hi) / totals_K)
  first, second = np.triu_indices(num_classes, 1)
  d_pairs = jnp.linalg.norm(centroids_KxH[first] - centroids_KxH[second], axis=-1)
  return MultiClassGeometry(r_K, d_pairs, jnp.mean(r_K), jnp.mean(d_pairs))
