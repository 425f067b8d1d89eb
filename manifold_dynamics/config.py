"""Frozen run configurations.

A run is described by two frozen dataclasses: `DataConfig` (which examples, SPEC §1) and
`TrainConfig` (model, optimiser and schedule, SPEC §2-3). They are built once by an entry point
or a notebook, validated on construction, written to `config.json`, and never mutated;
variants are made with `dataclasses.replace`.
"""

import dataclasses
import math
from typing import Optional, Tuple

from manifold_dynamics.data.registry import DATASETS, parse_task
from manifold_dynamics.difficulty import GROUPS as SCORE_GROUPS
from manifold_dynamics.errors import UserError
from manifold_dynamics.models import ACTIVATIONS, MATMUL_PRECISIONS, MODELS
from manifold_dynamics.optimizers import OPTIMIZERS

# Whose observables a run records: the first layer the model sows, every one, or named layers
# (comma-separated names that the model sows, e.g. 'conv_0,conv_1').
LAYERS = ('first', 'all')
DATASET_PREFIXES = ('tfds:', 'npz:')  # datasets from anywhere: tfds:NAME, npz:PATH


def _require(condition: bool, message: str):
  if not condition:
    raise UserError(message)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which examples a run trains and tests on (SPEC §1)."""

  # Registry name (mnist, kmnist, fashion_mnist, cifar10), tfds:NAME (any TFDS image
  # classification dataset), npz:PATH (arrays x_train, y_train, x_test, y_test), or 'arrays'
  # for a Task a caller builds itself (`Task.from_arrays`, passed to the study).
  dataset: str = 'mnist'
  train_size: int = 8192  # P, number of training examples in the slice T
  subset_index: int = 0  # k: T = train split examples [k*P, (k+1)*P)
  data_dir: Optional[str] = None  # local directory of original files; None = cache
  data_source: str = 'auto'  # 'auto', 'local', 'cache' or 'tfds' (see data.sources)
  # Fraction f of T whose binary label is flipped (round(f P) examples, the same ones for every
  # run of this slice: data.task.flipped_indices); the test set keeps its true labels.
  label_noise: float = 0.0
  # 'parity' (even vs odd, the paper's), 'classes' (all K classes, K-way softmax) or
  # 'pair:A,B' (classes A and B only), SPEC §8.
  task: str = 'parity'

  def __post_init__(self):
    parse_task(self.task)
    _require(
        self.dataset in DATASETS
        or self.dataset == 'arrays'
        or self.dataset.startswith(DATASET_PREFIXES),
        f'unknown dataset {self.dataset!r}; choose one of {", ".join(sorted(DATASETS))}, '
        f'tfds:NAME or npz:PATH.',
    )
    _require(self.train_size > 0, f'--train_size must be positive, got {self.train_size}.')
    _require(self.subset_index >= 0, f'--subset_index must be >= 0, got {self.subset_index}.')
    _require(0 <= self.label_noise < 1, f'--label_noise must be in [0, 1), got {self.label_noise}.')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Model, optimiser and schedule of a seed-parallel training run (SPEC §2-3, §8)."""

  model: str = 'mlp'  # one of models.MODELS: mlp, cnn, resnet
  depth: int = 2  # L, number of weight layers (2 = one hidden layer)
  width: int = 20  # H, units per hidden layer
  activation: str = 'tanh'  # one of ACTIVATIONS (every model)
  # model='cnn': channels of each 3x3 conv block (conv, activation, 2x2 average pool), then a
  # hidden dense layer of `width` units.
  cnn_channels: Tuple[int, ...] = (16, 32)
  # model='resnet': channels of the first of its three stages (doubled at each), and residual
  # blocks per stage (1 = ResNet-8, 3 = ResNet-20); no normalisation couples examples.
  resnet_width: int = 16
  resnet_blocks: int = 1
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
  # Observables of the first layer the model sows only ('first', the paper's first hidden
  # layer), of every one ('all'), or of named ones ('conv_0,dense_0'): the history then gains
  # layer_R_plus & co., (seeds, epochs+1, layers), the first one the headline.
  layers: str = 'first'
  # Representations of conv layers average-pooled over space (C values) rather than
  # flattened (H W C values) before the geometry (SPEC §8).
  pooled: bool = False
  # Mini-batch size B (None = the whole training set: full-batch GD, SPEC §3). An epoch is
  # one pass over a fresh per-seed permutation of T (the last short batch kept), SPEC §8.
  batch_size: Optional[int] = None
  # Seeds trained together (vmapped); 0 = all of them. Smaller groups run one after another
  # (same results up to float rounding) and bound memory to one group's.
  seed_batch: int = 0
  # Examples per forward pass when a mini-batch run measures T (and any run its test set):
  # bounds memory, never changes a value.
  eval_batch_size: int = 1024
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
        self.model in MODELS,
        f'unknown --model={self.model!r}; choose one of {", ".join(MODELS)}.',
    )
    try:
      channels = (self.cnn_channels,) if isinstance(self.cnn_channels, int) else self.cnn_channels
      object.__setattr__(self, 'cnn_channels', tuple(int(c) for c in channels))
    except ValueError:
      raise UserError(
          f'--cnn_channels takes comma-separated integers, got {self.cnn_channels}.'
      ) from None
    _require(
        len(self.cnn_channels) > 0 and all(c > 0 for c in self.cnn_channels),
        f'--cnn_channels must be positive integers, got {self.cnn_channels}.',
    )
    _require(self.resnet_width > 0, f'--resnet_width must be positive, got {self.resnet_width}.')
    _require(self.resnet_blocks > 0, f'--resnet_blocks must be positive, got {self.resnet_blocks}.')
    _require(
        self.batch_size is None or self.batch_size > 0,
        f'--batch_size must be positive (or unset for full batch), got {self.batch_size}.',
    )
    _require(self.seed_batch >= 0, f'--seed_batch must be >= 0, got {self.seed_batch}.')
    _require(
        self.eval_batch_size > 0,
        f'--eval_batch_size must be positive, got {self.eval_batch_size}.',
    )
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
        bool(self.layers.strip(', ')),
        f'--layers must be first, all or layer names, got {self.layers!r}.',
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


def model_label(cfg: TrainConfig) -> str:
  """Short description of cfg's network, for titles and log lines: '2x20 tanh',
  'cnn 16-32/20 tanh', 'resnet8 w16 tanh'."""
  if cfg.model == 'cnn':
    return f'cnn {"-".join(map(str, cfg.cnn_channels))}/{cfg.width} {cfg.activation}'
  if cfg.model == 'resnet':
    return f'resnet{2 + 6 * cfg.resnet_blocks} w{cfg.resnet_width} {cfg.activation}'
  return f'{cfg.depth}x{cfg.width} {cfg.activation}'


def run_label(data_cfg: DataConfig, train_cfg: TrainConfig, model=None) -> str:
  """The settings that tell runs apart, as every figure title shows them (`model`: a caller's
  own Flax module, named by its class)."""
  task = '' if data_cfg.task == 'parity' else f', {data_cfg.task}'
  batch = '' if train_cfg.batch_size is None else f', B={train_cfg.batch_size}'
  return (
      f'{data_cfg.dataset}{task}, P={data_cfg.train_size}, '
      f'{model_label(train_cfg) if model is None else type(model).__name__}, '
      f'{train_cfg.optimizer} lr={train_cfg.lr:g}{batch}'
  )
