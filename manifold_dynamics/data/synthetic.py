"""Data sets whose structure is known (SPEC §8): `--dataset=synthetic:NAME`.

Each family draws a train and a test split from a seeded generator, with no files, and knows
per-example ground truth that a real data set hides:

  gaussians        two Gaussian clouds in N dimensions, means +-m u (|u| = 1), identity
                   covariance, classes equally likely. The Bayes classifier is sign(u.x); its
                   error is Phi(-m); each example's signed distance to the Bayes boundary is
                   y u.x (negative = on the wrong side: misclassified by the Bayes classifier).
  hidden_manifold  latent c ~ N(0, I_d), inputs x = tanh(F c / sqrt(d)) with a fixed N x d
                   Gaussian matrix F, label sign(w.c) of a fixed unit teacher w: d is the
                   intrinsic dimension and the Bayes error is 0; the truth is the latent
                   margin y w.c.
  long_tail        the two clouds of `gaussians`, except a fraction f of the examples drawn
                   from 16 rare sub-clusters (centres at distance 3 m in random directions,
                   std 0.5, each with a random label): membership is the truth.

Examples are generated in blocks of 4096 from a key (seed, split, block), so the first P
examples of the train split are the same whatever P (a P-scan nests its training sets, as on
real data), and the test split never overlaps the train split. Classes are 0 and 1: the parity
task makes class 0 the positive class, as for images.
"""

import dataclasses
import math
from typing import Callable, Dict, Tuple

import numpy as np
from scipy import special

from manifold_dynamics.data.formats import RawSplits
from manifold_dynamics.errors import UserError

PREFIX = 'synthetic:'
BLOCK = 4096
TEST_EXAMPLES = 10000
TAIL_CLUSTERS = 16


@dataclasses.dataclass(frozen=True)
class Params:
  """The parameters of every family (each uses some): DataConfig's synthetic_* fields."""

  dim: int = 100  # N, input dimension
  separation: float = 1.0  # m: the clouds' means are +-m u
  latent_dim: int = 10  # d, hidden_manifold's intrinsic dimension
  tail_fraction: float = 0.05  # f, long_tail's fraction of rare examples
  seed: int = 0  # the data set's own seed (not the networks')


def gaussian_bayes_error(separation: float) -> float:
  """Phi(-m): the error of sign(u.x) on two unit-variance clouds at +-m u."""
  return float(0.5 * special.erfc(separation / math.sqrt(2.0)))


@dataclasses.dataclass(frozen=True)
class Synthetic:
  """A family: `draw(params, rng, n) -> (x (n, N), classes (n,), truth {name: (n,)})`, and the
  data set's known quantities (a dict of numbers, e.g. the Bayes error)."""

  draw: Callable
  known: Callable[[Params], Dict[str, float]]
  truth: Tuple[str, ...]  # the per-example ground truth `draw` returns


def _direction(params: Params, what: int, dim: int) -> np.ndarray:
  v = np.random.default_rng([params.seed, 7, what]).normal(size=dim)
  return v / np.linalg.norm(v)


def _clouds(params: Params, rng: np.random.Generator, n: int):
  u = _direction(params, 0, params.dim)
  classes = rng.integers(0, 2, n)
  y = 1.0 - 2.0 * classes  # class 0: +1
  x = rng.normal(size=(n, params.dim)) + params.separation * y[:, None] * u
  return x, classes, {'bayes_margin': y * (x @ u), 'bayes_wrong': (y * (x @ u) < 0)}


def _hidden_manifold(params: Params, rng: np.random.Generator, n: int):
  fixed = np.random.default_rng([params.seed, 7, 1])
  F = fixed.normal(size=(params.dim, params.latent_dim))
  w = _direction(params, 2, params.latent_dim)
  c = rng.normal(size=(n, params.latent_dim))
  x = np.tanh(c @ F.T / math.sqrt(params.latent_dim))
  margin = c @ w
  classes = (margin < 0).astype(np.int64)  # class 0: w.c > 0
  return x, classes, {'latent_margin': np.abs(margin)}


def _long_tail(params: Params, rng: np.random.Generator, n: int):
  x, classes, truth = _clouds(params, rng, n)
  fixed = np.random.default_rng([params.seed, 7, 3])
  centres = fixed.normal(size=(TAIL_CLUSTERS, params.dim))
  centres *= 3.0 * params.separation / np.linalg.norm(centres, axis=1, keepdims=True)
  labels = fixed.integers(0, 2, TAIL_CLUSTERS)
  tail = rng.random(n) < params.tail_fraction
  which = rng.integers(0, TAIL_CLUSTERS, n)
  x = np.where(tail[:, None], centres[which] + 0.5 * rng.normal(size=x.shape), x)
  classes = np.where(tail, labels[which], classes)
  return x, classes, {'tail': tail, 'tail_cluster': np.where(tail, which, -1)}


FAMILIES = {
    'gaussians': Synthetic(
        _clouds,
        lambda p: {'bayes_error': gaussian_bayes_error(p.separation)},
        ('bayes_margin', 'bayes_wrong'),
    ),
    'hidden_manifold': Synthetic(
        _hidden_manifold,
        lambda p: {'bayes_error': 0.0, 'intrinsic_dim': float(p.latent_dim)},
        ('latent_margin',),
    ),
    'long_tail': Synthetic(
        _long_tail,
        lambda p: {'tail_fraction': p.tail_fraction, 'tail_clusters': float(TAIL_CLUSTERS)},
        ('tail', 'tail_cluster'),
    ),
}


def family_of(dataset: str) -> str:
  """'gaussians' for 'synthetic:gaussians', or a one-line error naming the families."""
  name = dataset[len(PREFIX) :]
  if name not in FAMILIES:
    raise UserError(
        f'unknown synthetic data set {name!r}; choose one of '
        f'{", ".join(PREFIX + f for f in FAMILIES)}.'
    )
  return name


def check(params: Params):
  if params.dim < 1 or params.latent_dim < 1:
    raise UserError(
        f'--synthetic_dim and --latent_dim must be positive, got {params.dim}, '
        f'{params.latent_dim}.'
    )
  if not math.isfinite(params.separation) or params.separation < 0:
    raise UserError(f'--separation must be >= 0, got {params.separation}.')
  if not 0 <= params.tail_fraction < 1:
    raise UserError(f'--tail_fraction must be in [0, 1), got {params.tail_fraction}.')


def _split(family: Synthetic, params: Params, split: int, n: int):
  """n examples of split 0 (train) or 1 (test), block by block."""
  parts = []
  for block in range(-(-n // BLOCK)):
    rng = np.random.default_rng([params.seed, split, block])
    parts.append(family.draw(params, rng, BLOCK))
  x = np.concatenate([p[0] for p in parts])[:n].astype(np.float32)
  classes = np.concatenate([p[1] for p in parts])[:n].astype(np.int64)
  truth = {k: np.concatenate([p[2][k] for p in parts])[:n] for k in family.truth}
  return x, classes, truth


def generate(dataset: str, params: Params, train_examples: int):
  """(RawSplits with a train split of `train_examples` and a test split of TEST_EXAMPLES,
  {truth name: (train_examples,) array}, {known quantity: value})."""
  family = FAMILIES[family_of(dataset)]
  check(params)
  x, classes, truth = _split(family, params, 0, train_examples)
  x_test, classes_test, _ = _split(family, params, 1, TEST_EXAMPLES)
  raw = RawSplits(x, classes, x_test, classes_test, grey=False)
  return raw, truth, family.known(params)
