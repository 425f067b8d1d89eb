"""Frozen run configurations.

A run is described by two frozen dataclasses: `DataConfig` (which examples, SPEC §1) and
`TrainConfig` (model, optimiser and schedule, SPEC §2-3). They are built once by an entry point
or a notebook, validated on construction, written to `config.json`, and never mutated;
variants are made with `dataclasses.replace`.
"""

import dataclasses
import math
from typing import Optional, Tuple

from manifold_dynamics.difficulty import GROUPS as SCORE_GROUPS
from manifold_dynamics.errors import UserError
from manifold_dynamics.models import ACTIVATIONS, MATMUL_PRECISIONS
from manifold_dynamics.optimizers import OPTIMIZERS

LAYERS = ('first', 'all')  # whose observables a run records


def _require(condition: bool, message: str):
  if not condition:
    raise UserError(message)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which examples a run trains and tests on (SPEC §1)."""

  dataset: str = 'mnist'  # registry name: mnist, kmnist, fashion_mnist, cifar10
  train_size: int = 8192  # P, number of training examples in the slice T
  subset_index: int = 0  # k: T = train split examples [k*P, (k+1)*P)
  data_dir: Optional[str] = None  # local directory of original files; None = cache
  data_source: str = 'auto'  # 'auto', 'local', 'cache' or 'tfds' (see data.sources)
  # Fraction f of T whose binary label is flipped (round(f P) examples, the same ones for every
  # run of this slice: data.task.flipped_indices); the test set keeps its true labels.
  label_noise: float = 0.0

  def __post_init__(self):
    _require(self.train_size > 0, f'--train_size must be positive, got {self.train_size}.')
    _require(self.subset_index >= 0, f'--subset_index must be >= 0, got {self.subset_index}.')
    _require(0 <= self.label_noise < 1, f'--label_noise must be in [0, 1), got {self.label_noise}.')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Model, optimiser and schedule of a seed-parallel training run (SPEC §2-3)."""

  depth: int = 2  # L, number of weight layers (2 = one hidden layer)
  width: int = 20  # H, units per hidden layer
  activation: str = 'tanh'  # one of ACTIVATIONS
  init_scale: float = 1.0  # s: weights and biases ~ U(-s/sqrt(fan_in), s/sqrt(fan_in))
  optimizer: str = 'sgd'  # one of OPTIMIZERS; all full-batch, one update per epoch
  lr: float = 0.2  # learning rate
  momentum: float = 0.9  # mu, used by optimizer='momentum' only
  weight_decay: float = 0.01  # lambda (L2 added to the gradient), optimizer='sgd_wd' only
  epochs: int = 1000  # T_end: number of updates; observables at epochs 0..T_end
  seeds: int = 100  # number of independent initialisations trained in parallel
  seed: int = 0  # root PRNG seed; seed s of the run uses fold_in(root, s)
  chunk_epochs: int = 0  # epochs per compiled chunk between progress lines; 0 = automatic
  # A seed has diverged when its loss is non-finite or exceeds this multiple of its initial
  # loss (with tanh a too-large lr keeps the loss finite, oscillating far above its start).
  divergence_factor: float = 100.0
  # Test error every this many epochs (and always at the last epoch trained); epochs not
  # evaluated are recorded as NaN. 0 = at the last epoch only (sweeps need nothing else).
  test_every: int = 1
  # End training once every seed's inversion is confirmed on R+, R- and D (stopping.py);
  # t*, phi and S(t*) are then read from the epochs trained. Seeds that never invert run on.
  stop_after_inversion: bool = False
  # Observables R+, R-, D of the first hidden layer only ('first', the paper's), or of every
  # hidden layer as well ('all': the history gains layer_R_plus & co., (seeds, epochs+1, L-1)).
  layers: str = 'first'
  # Precision of the network's matrix products (models.MATMUL_PRECISIONS): 'float32' is full
  # float32 on every backend, so a TPU or GPU gives the CPU's numbers; 'bfloat16' (opt-in,
  # faster on TPUs, GPUs and AMX CPUs) rounds their operands to bfloat16.
  matmul_precision: str = 'float32'
  # Per-example difficulty scores accumulated during training (difficulty.GROUPS; 'all' = every
  # one), saved as scores.npz: an O(P) carry per seed, no per-epoch history.
  scores: Tuple[str, ...] = ()
  # Epochs (in [0, epochs)) at which the el2n and grand scores are taken.
  score_epochs: Tuple[int, ...] = ()

  def __post_init__(self):
    scores = (self.scores,) if isinstance(self.scores, str) else tuple(self.scores)
    scores = SCORE_GROUPS if 'all' in scores else scores
    unknown = [s for s in scores if s not in SCORE_GROUPS]
    _require(
        not unknown,
        f'unknown score {unknown[0]!r} in --scores; choose among {", ".join(SCORE_GROUPS)} '
        f'(or all).'
        if unknown
        else '',
    )
    object.__setattr__(self, 'scores', tuple(g for g in SCORE_GROUPS if g in scores))
    try:
      epochs = sorted({int(e) for e in self.score_epochs})
    except ValueError:
      raise UserError(
          f'--score_epochs takes comma-separated integers, got {self.score_epochs}.'
      ) from None
    object.__setattr__(self, 'score_epochs', tuple(epochs))
    _require(
        self.depth >= 2,
        f'--depth must be >= 2 (the representation is the first '
        f'hidden layer), got {self.depth}.',
    )
    _require(self.width > 0, f'--width must be positive, got {self.width}.')
    _require(
        self.activation in ACTIVATIONS,
        f'unknown --activation={self.activation!r}; choose one of {", ".join(ACTIVATIONS)}.',
    )
    _require(
        self.optimizer in OPTIMIZERS,
        f'unknown --optimizer={self.optimizer!r}; choose one of {", ".join(OPTIMIZERS)}.',
    )
    _require(math.isfinite(self.lr) and self.lr > 0, f'--lr must be positive, got {self.lr}.')
    _require(
        math.isfinite(self.init_scale) and self.init_scale > 0,
        f'--init_scale must be positive, got {self.init_scale}.',
    )
    _require(0 <= self.momentum < 1, f'--momentum must be in [0, 1), got {self.momentum}.')
    _require(self.weight_decay >= 0, f'--weight_decay must be >= 0, got {self.weight_decay}.')
    _require(self.epochs > 0, f'--epochs must be positive, got {self.epochs}.')
    beyond = [e for e in self.score_epochs if not 0 <= e < self.epochs]
    _require(
        not beyond,
        f'--score_epochs={beyond[0] if beyond else 0} is beyond the run: scores are taken at '
        f'the epochs trained, 0 to {self.epochs - 1} (--epochs={self.epochs}).',
    )
    _require(self.seeds > 0, f'--seeds must be positive, got {self.seeds}.')
    _require(
        self.divergence_factor > 1,
        f'--divergence_factor must be > 1, got {self.divergence_factor}.',
    )
    _require(
        self.layers in LAYERS,
        f'--layers must be one of {", ".join(LAYERS)}, got ' f'{self.layers!r}.',
    )
    _require(
        self.matmul_precision in MATMUL_PRECISIONS,
        f'--matmul_precision must be one of {", ".join(MATMUL_PRECISIONS)}, got '
        f'{self.matmul_precision!r}.',
    )
    _require(
        self.test_every >= 0,
        f'--test_every must be >= 0 (0 = last epoch only), got {self.test_every}.',
    )
    _require(
        self.chunk_epochs >= 0,
        f'--chunk_epochs must be >= 0 (0 = automatic), got {self.chunk_epochs}.',
    )
