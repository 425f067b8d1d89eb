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
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ClassGeometry(NamedTuple):
  """R+, R- and D of one set of representations (scalars, or arrays under vmap)."""

  R_plus: jax.Array  # gyration radius of M+ (unit-sphere units, in [0, 1])
  R_minus: jax.Array  # gyration radius of M- (in [0, 1])
  D: jax.Array  # distance between the centroids of M+ and M- (in [0, 2])


def project_to_sphere(h_PxH: jax.Array) -> jax.Array:
  """h / ||h|| row-wise; rows equal to zero stay zero."""
  norm_P1 = jnp.linalg.norm(h_PxH, axis=-1, keepdims=True)
  safe_norm = jnp.where(norm_P1 > 0, norm_P1, 1.0)
  return jnp.where(norm_P1 > 0, h_PxH / safe_norm, 0.0)


def _centroid_and_radius(x_PxH: jax.Array, w_P: jax.Array):
  """Weighted centroid (H,) and gyration radius () of the rows of x."""
  total = jnp.sum(w_P)
  centroid_H = (w_P @ x_PxH) / total
  # Two passes (distance to the centroid) rather than 1 - ||c||^2: no cancellation in float32
  # when the manifold is tight.
  sq_dist_P = jnp.sum(jnp.square(x_PxH - centroid_H[None, :]), axis=-1)
  return centroid_H, jnp.sqrt((w_P @ sq_dist_P) / total)


@jax.jit
def class_geometry(h_PxH: jax.Array, y_P: jax.Array, w_P: jax.Array = None) -> ClassGeometry:
  """R+, R-, D of the projected representations h of examples with labels y in {+1, -1}.

  Args:
    h_PxH: raw (unnormalised) representations of the P training examples.
    y_P: labels, +1 or -1.
    w_P: optional non-negative weight per example (1 = in the set); default all ones.
  """
  if w_P is None:
    w_P = jnp.ones(y_P.shape, h_PxH.dtype)
  h_hat_PxH = project_to_sphere(h_PxH)
  w_P = w_P.astype(h_hat_PxH.dtype)
  c_plus_H, r_plus = _centroid_and_radius(h_hat_PxH, jnp.where(y_P > 0, w_P, 0.0))
  c_minus_H, r_minus = _centroid_and_radius(h_hat_PxH, jnp.where(y_P < 0, w_P, 0.0))
  return ClassGeometry(r_plus, r_minus, jnp.linalg.norm(c_plus_H - c_minus_H))
