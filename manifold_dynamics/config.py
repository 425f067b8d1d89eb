"""Frozen run configurations.

A run is described by two frozen dataclasses: `DataConfig` (which examples, SPEC §1) and
`TrainConfig` (model, optimiser and schedule, SPEC §2-3). They are built once by an entry point
or a notebook, validated on construction, written to `config.json`, and never mutated;
variants are made with `dataclasses.replace`.
"""

import dataclasses
import importlib
import math
from typing import Callable, Optional, Sequence, Tuple

from manifold_dynamics.data import synthetic
from manifold_dynamics.data.registry import DATASETS, parse_task
from manifold_dynamics.data.sources import SOURCES
from manifold_dynamics.data.task import GREY
from manifold_dynamics.errors import UserError
from manifold_dynamics.records.history import DEFAULT_RHO, RULES
from manifold_dynamics.records.scores import GROUPS as SCORE_GROUPS

# Whose observables a run records: the first layer the model sows, every one, or named layers
# (comma-separated names that the model sows, e.g. 'conv_0,conv_1').
LAYERS = ('first', 'all')
# datasets from anywhere: tfds:NAME, npz:PATH, and synthetic:NAME (data/synthetic.py)
DATASET_PREFIXES = ('tfds:', 'npz:', 'synthetic:')


def _registry(module: str, name: str) -> Callable[[], Tuple[str, ...]]:
  """The names of a registry of the engine, imported when first needed (so that this module,
  which the records and the analysis may read, never imports JAX)."""
  return lambda: tuple(getattr(importlib.import_module(module), name))


MODELS = _registry('manifold_dynamics.engine.models', 'MODELS')
ACTIVATIONS = _registry('manifold_dynamics.engine.models', 'ACTIVATIONS')
MATMUL_PRECISIONS = _registry('manifold_dynamics.engine.models', 'MATMUL_PRECISIONS')
OPTIMIZERS = _registry('manifold_dynamics.engine.optimizers', 'OPTIMIZERS')


def setting(default, help: str, choices: Optional[Callable[[], Sequence[str]]] = None):  # noqa: A002
  """A config field with the help text of its flag (`cli.define_config_flags` makes one flag
  per field) and, for a flag that takes one of a few names, the function giving them."""
  return dataclasses.field(default=default, metadata={'help': help, 'choices': choices})


def _require(condition: bool, message: str):
  if not condition:
    raise UserError(message)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which examples a run trains and tests on (SPEC §1)."""

  # 'arrays' names a Task a caller builds itself (`Task.from_arrays`, passed to the study).
  dataset: str = setting(
      'mnist',
      f'Dataset: {", ".join(sorted(DATASETS))} (SPEC §1), tfds:NAME (any TFDS image '
      'classification dataset; the [tfds] extra), npz:PATH (arrays x_train, y_train, '
      f'x_test, y_test) or {", ".join(synthetic.PREFIX + f for f in synthetic.FAMILIES)} '
      '(known structure, SPEC §8; the --synthetic_* flags).',
  )
  train_size: int = setting(8192, 'P, training examples in the slice T.')
  subset_index: int = setting(0, 'k: train on examples [k*P, (k+1)*P) of the train split.')
  data_dir: Optional[str] = setting(
      None,
      'Directory of the original dataset files; default: the cache ($MANIFOLD_DYNAMICS_DATA '
      'or ~/.cache/manifold_dynamics), fetched on first use.',
  )
  data_source: str = setting(
      'auto',
      'Where the data comes from (auto: --data_dir, else cache, else tfds).',
      lambda: tuple(SOURCES),
  )
  # The same round(f P) examples for every run of this slice (data.task.flipped_indices).
  label_noise: float = setting(
      0.0,
      'Fraction of the training labels flipped (the same examples in every run of the slice; '
      'the test set keeps true labels).',
  )
  grey: str = setting(
      'mean',
      'RGB to one value per pixel (SPEC §8): mean (the channels averaged, as the paper says) '
      'or sum_standardised (each channel standardised per pixel on T, then summed, as the '
      "authors' notebook does; the runs then use these inputs as they are), or rgb (the three "
      'channels kept, for conv models).',
      lambda: GREY,
  )
  synthetic_dim: int = setting(100, 'synthetic:*: N, the input dimension.')
  separation: float = setting(
      1.0, 'synthetic:gaussians, long_tail: m, the clouds at +-m u (Bayes error Phi(-m)).'
  )
  latent_dim: int = setting(10, 'synthetic:hidden_manifold: d, the intrinsic dimension.')
  tail_fraction: float = setting(
      0.05, 'synthetic:long_tail: f, the fraction of examples from rare sub-clusters.'
  )
  synthetic_seed: int = setting(0, "synthetic:*: the data set's own seed.")
  task: str = setting(
      'parity',
      "parity (even vs odd, the paper's), classes (all K classes, K-way softmax) or "
      'pair:A,B (classes A and B only), SPEC §8.',
  )

  def __post_init__(self):
    parse_task(self.task)
    _require(
        self.dataset in DATASETS
        or self.dataset == 'arrays'
        or self.dataset.startswith(DATASET_PREFIXES),
        f'unknown dataset {self.dataset!r}; choose one of {", ".join(sorted(DATASETS))}, '
        f'tfds:NAME, npz:PATH or synthetic:NAME.',
    )
    _require(self.grey in GREY, f'unknown --grey={self.grey!r}; choose one of {", ".join(GREY)}.')
    if self.dataset.startswith(synthetic.PREFIX):
      synthetic.family_of(self.dataset)
      synthetic.check(self.synthetic_params())
    _require(self.train_size > 0, f'--train_size must be positive, got {self.train_size}.')
    _require(self.subset_index >= 0, f'--subset_index must be >= 0, got {self.subset_index}.')
    _require(0 <= self.label_noise < 1, f'--label_noise must be in [0, 1), got {self.label_noise}.')

  def synthetic_params(self) -> synthetic.Params:
    return synthetic.Params(
        self.synthetic_dim,
        self.separation,
        self.latent_dim,
        self.tail_fraction,
        self.synthetic_seed,
    )


# TrainConfig fields that bound memory and change results by float rounding at most: a sweep
# may change them between its runs (a point that ran out of memory reruns with less).
MEMORY_ONLY = ('seed_batch', 'eval_batch_size')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Model, optimiser and schedule of a seed-parallel training run (SPEC §2-3, §8)."""

  model: str = setting('mlp', 'Network (engine/models.py MODELS).', MODELS)
  depth: int = setting(2, 'L, weight layers (2 = one hidden layer).')
  width: int = setting(20, 'H, units per hidden layer (--model=cnn: its dense layer).')
  activation: str = setting('tanh', 'Hidden activation (every model).', ACTIVATIONS)
  cnn_channels: Tuple[int, ...] = setting(
      (16, 32),
      '--model=cnn: channels of each 3x3 conv block (conv, activation, 2x2 average pool), '
      'then a dense layer of --width units.',
  )
  # No normalisation in the ResNet: nothing couples the examples (or the seeds).
  resnet_width: int = setting(
      16, '--model=resnet: channels of its first stage (doubled at each of the three).'
  )
  resnet_blocks: int = setting(
      1, '--model=resnet: residual blocks per stage (1 = ResNet-8, 3 = ResNet-20).'
  )
  init_scale: float = setting(
      1.0, 's: weights and biases ~ U(-s/sqrt(fan_in), s/sqrt(fan_in)), every model.'
  )
  optimizer: str = setting('sgd', 'Optimiser (one update per batch).', OPTIMIZERS)
  lr: float = setting(0.2, 'Learning rate.')
  momentum: float = setting(0.9, 'mu, momentum (--optimizer=momentum).')
  weight_decay: float = setting(
      0.01, 'lambda, L2 weight decay added to the gradient (--optimizer=sgd_wd).'
  )
  epochs: int = setting(
      1000, 'T_end, number of epochs (full batch: updates); observables at epochs 0..T_end.'
  )
  seeds: int = setting(100, 'Independent initialisations trained in parallel.')
  seed: int = setting(0, 'Root PRNG seed; seed s of the run uses fold_in(root, s).')
  chunk_epochs: int = setting(
      0, 'Epochs per compiled chunk between progress lines (0 = automatic).'
  )
  # With tanh a too-large lr keeps the loss finite, oscillating far above its start.
  divergence_factor: float = setting(
      100.0,
      'Stop when the loss of a seed is non-finite or exceeds this multiple of its initial loss.',
  )
  test_every: int = setting(
      1,
      'Evaluate the test set every this many epochs and at the last one; the others are '
      'recorded as NaN (0 = the last epoch only).',
  )
  stop_after_inversion: bool = setting(
      False,
      'End training once every seed has inverted on its headline curves (engine/stopping.py; '
      't*, phi and S(t*) need nothing more); seeds that never invert run to --epochs.',
  )
  t_star_rule: str = setting(
      'global',
      "How t* is read (SPEC §5, §8): 'global', the curve's global extremum (the paper's; a run "
      "stopped early says so in its summary), or 'first', the first confirmed extremum (exact "
      'under --stop_after_inversion). Every summary reports both.',
      lambda: RULES,
  )
  inversion_rho: float = setting(
      DEFAULT_RHO,
      'rho of the relative inversion criterion (SPEC §8): a move back of more than rho times '
      'the drop before the extremum, reported beside the absolute tolerance 0.01.',
  )
  # Other than 'first', the history gains layer_R_plus & co. (seeds, epochs+1, layers), the
  # first one the headline.
  layers: str = setting(
      'first',
      "Layers whose geometry is recorded: the first the model sows ('first', the paper's "
      "first hidden layer), every one ('all': layers_vs_epoch figure), or names "
      "('conv_0,dense_0').",
  )
  pooled: bool = setting(
      False,
      'Average conv representations over space (C values per example) before the geometry, '
      'rather than flattening them (SPEC §8).',
  )
  batch_size: Optional[int] = setting(
      None,
      'Mini-batch size B (unset: full-batch GD). An epoch is one pass over a per-seed '
      'permutation of T (SPEC §8).',
  )
  # Same results up to float rounding.
  seed_batch: int = setting(
      0,
      'Seeds trained together (0 = all): smaller groups run one after another, bounding '
      'memory (a conv net on a CPU).',
  )
  eval_batch_size: int = setting(
      1024, 'Examples per forward pass when measuring T and the test set (memory only).'
  )
  matmul_precision: str = setting(
      'float32',
      "Precision of the network's matrix products: float32 (full, as on a CPU, on every "
      'backend) or bfloat16 (operands rounded to bfloat16, float32 accumulation: faster on '
      'TPUs, GPUs and AMX CPUs; see docs/speed.md).',
      MATMUL_PRECISIONS,
  )
  # An O(P) carry per seed, no per-epoch history.
  scores: Tuple[str, ...] = setting(
      (),
      'Per-example difficulty scores to record during training (scores.npz), of '
      f'{", ".join(SCORE_GROUPS)}, or all (experiments/scores.py compares them).',
  )
  score_epochs: Tuple[int, ...] = setting(
      (), 'Epochs at which the el2n and grand scores are taken (each in [0, --epochs)).'
  )

  def __post_init__(self):
    scores = (self.scores,) if isinstance(self.scores, str) else tuple(self.scores)
    groups = SCORE_GROUPS
    scores = groups if 'all' in scores else scores
    unknown = [s for s in scores if s not in groups]
    _require(
        not unknown,
        f'unknown score {unknown[0]!r} in --scores; choose among {", ".join(groups)} ' f'(or all).'
        if unknown
        else '',
    )
    object.__setattr__(self, 'scores', tuple(g for g in groups if g in scores))
    try:
      epochs = sorted({int(e) for e in self.score_epochs})
    except ValueError:
      raise UserError(
          f'--score_epochs takes comma-separated integers, got {self.score_epochs}.'
      ) from None
    object.__setattr__(self, 'score_epochs', tuple(epochs))
    _require(
        self.model in MODELS(),
        f'unknown --model={self.model!r}; choose one of {", ".join(MODELS())}.',
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
        self.activation in ACTIVATIONS(),
        f'unknown --activation={self.activation!r}; choose one of {", ".join(ACTIVATIONS())}.',
    )
    _require(
        self.optimizer in OPTIMIZERS(),
        f'unknown --optimizer={self.optimizer!r}; choose one of {", ".join(OPTIMIZERS())}.',
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
        self.t_star_rule in RULES,
        f'unknown --t_star_rule={self.t_star_rule!r}; choose one of {", ".join(RULES)}.',
    )
    _require(
        math.isfinite(self.inversion_rho) and self.inversion_rho > 0,
        f'--inversion_rho must be positive, got {self.inversion_rho}.',
    )
    _require(
        self.divergence_factor > 1,
        f'--divergence_factor must be > 1, got {self.divergence_factor}.',
    )
    _require(
        bool(self.layers.strip(', ')),
        f'--layers must be first, all or layer names, got {self.layers!r}.',
    )
    _require(
        self.matmul_precision in MATMUL_PRECISIONS(),
        f'--matmul_precision must be one of {", ".join(MATMUL_PRECISIONS())}, got '
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


def run_label(
    data_cfg: DataConfig, train_cfg: TrainConfig, model=None, optimizer: bool = True
) -> str:
  """The settings that tell runs apart, as every figure title shows them (`model`: a caller's
  own Flax module, named by its class; `optimizer=False` leaves the optimiser out, for a
  figure whose curves differ in it)."""
  task = '' if data_cfg.task == 'parity' else f', {data_cfg.task}'
  batch = '' if train_cfg.batch_size is None else f', B={train_cfg.batch_size}'
  training = f', {train_cfg.optimizer} lr={train_cfg.lr:g}{batch}' if optimizer else ''
  return (
      f'{data_cfg.dataset}{task}, P={data_cfg.train_size}, '
      f'{model_label(train_cfg) if model is None else type(model).__name__}{training}'
  )
