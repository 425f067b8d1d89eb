"""Frozen run configurations.

A run is described by two frozen dataclasses: `DataConfig` (which examples, SPEC §1) and
`TrainConfig` (model, optimiser and schedule, SPEC §2-3). They are built once by an entry point
or a notebook, validated on construction, written to `config.json`, and never mutated;
variants are made with `dataclasses.replace`.

TrainConfig holds what every model shares. A model's own settings (the MLP's depth and width,
the CNN's channels, ...) are declared by the model itself (engine/models/<name>.py) and held
here as a plain mapping, `model_settings`, which the engine turns into the model's settings;
the names that the engine's registries accept (models, activations, optimisers, precisions)
are checked there too (`engine.train.check`), so that this module never imports JAX.
"""

import dataclasses
import math
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

from manifold_dynamics.data import synthetic
from manifold_dynamics.data.registry import DATASETS, parse_task
from manifold_dynamics.data.sources import SOURCES
from manifold_dynamics.data.task import GREY, NOISE_KINDS, SPLITS
from manifold_dynamics.errors import UserError
from manifold_dynamics.records.history import DEFAULT_RHO, RULES
from manifold_dynamics.records.scores import GROUPS as SCORE_GROUPS

# Whose observables a run records: the first layer the model sows, every one, or named layers
# (comma-separated names that the model sows, e.g. 'conv_0,conv_1').
LAYERS = ('first', 'all')
# datasets from anywhere: tfds:NAME, npz:PATH, and synthetic:NAME (data/synthetic.py)
DATASET_PREFIXES = ('tfds:', 'npz:', 'synthetic:')


def setting(default, help: str, choices: Optional[Callable[[], Sequence[str]]] = None):  # noqa: A002
  """A config field with the help text of its flag (`cli.define_config_flags` makes one flag
  per field) and, for a flag that takes one of a few names, the function giving them."""
  return dataclasses.field(default=default, metadata={'help': help, 'choices': choices})


def require(condition: bool, message: str):
  """A one-line error (`UserError`) with `message` unless `condition`."""
  if not condition:
    raise UserError(message)


_require = require


class Frozen(dict):
  """A read-only dict: a config field that maps names to values (TrainConfig.model_settings).
  Hashable, and written to config.json as a plain object."""

  def __hash__(self):
    return hash(tuple(sorted((k, _hashable(v)) for k, v in self.items())))

  def __reduce__(self):
    return (Frozen, (dict(self),))

  def _read_only(self, *args, **kwargs):
    raise TypeError('a config is frozen: make a new one with dataclasses.replace')

  __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only


def _hashable(value):
  return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


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
  label_noise_kind: str = setting(
      'symmetric',
      'With --label_noise on K > 2 classes: symmetric (each flipped label to a uniformly random '
      'other class) or class_conditional (class k to class k + 1 mod K). A binary label is '
      'negated either way.',
      lambda: NOISE_KINDS,
  )
  # The test split as T, e.g. to find the published test-set label errors (SPEC §9).
  train_split: str = setting(
      'train',
      'The split T is drawn from: train, or test (then the runs are tested on the first '
      'n_test examples of the train split).',
      lambda: SPLITS,
  )
  labels: Optional[str] = setting(
      None,
      "The split's labels from a file, replacing the dataset's: PATH.npy, or PATH.npz:KEY (one "
      "integer class per example of --train_split, in its order; a 'clean_label' array in the "
      "same .npz is checked against the dataset's labels, and the examples whose label differs "
      'from it are the known errors). CIFAR-10N: cifar10n_train_labels.npz:aggre_label.',
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
    _require(
        self.label_noise_kind in NOISE_KINDS,
        f'unknown --label_noise_kind={self.label_noise_kind!r}; choose one of '
        f'{", ".join(NOISE_KINDS)}.',
    )
    _require(
        self.train_split in SPLITS,
        f'unknown --train_split={self.train_split!r}; choose one of {", ".join(SPLITS)}.',
    )

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

  model: str = setting('mlp', 'Network, by name (engine/models/: mlp, cnn, resnet, vit).')
  # The model's own settings by name (its flags: engine/models/<model>.py), over its defaults.
  model_settings: Mapping[str, Any] = dataclasses.field(
      default_factory=Frozen,
      metadata={'help': None, 'choices': None, 'flag': False},
  )
  activation: str = setting('tanh', 'Hidden activation (every model).')
  init_scale: float = setting(
      1.0, 's: weights and biases ~ U(-s/sqrt(fan_in), s/sqrt(fan_in)), every model.'
  )
  optimizer: str = setting('sgd', 'Optimiser (one update per batch): sgd, momentum, sgd_wd, adam.')
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
      "stopped early says so in its summary), 'first', the first confirmed extremum, or "
      "'after_transient', the first extremum after learning begins that the curve reaches by a "
      "fall (a conv net's curves first move the wrong way); the last two exact under "
      '--stop_after_inversion. Every summary reports all three.',
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
      'TPUs, GPUs and AMX CPUs; see docs/speed.md). Every model of engine/models/.',
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
    object.__setattr__(self, 'model_settings', Frozen(self.model_settings or {}))
    _require(
        self.batch_size is None or self.batch_size > 0,
        f'--batch_size must be positive (or unset for full batch), got {self.batch_size}.',
    )
    _require(self.seed_batch >= 0, f'--seed_batch must be >= 0, got {self.seed_batch}.')
    _require(
        self.eval_batch_size > 0,
        f'--eval_batch_size must be positive, got {self.eval_batch_size}.',
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
        self.test_every >= 0,
        f'--test_every must be >= 0 (0 = last epoch only), got {self.test_every}.',
    )
    _require(
        self.chunk_epochs >= 0,
        f'--chunk_epochs must be >= 0 (0 = automatic), got {self.chunk_epochs}.',
    )

  def with_model(self, model: Optional[str] = None, **settings) -> 'TrainConfig':
    """This config with its model's settings changed (or another model, with `settings` its
    settings): `cfg.with_model(depth=4, width=40)`."""
    if model is None or model == self.model:
      return dataclasses.replace(self, model_settings={**self.model_settings, **settings})
    return dataclasses.replace(self, model=model, model_settings=settings)

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> 'TrainConfig':
    """A TrainConfig from config.json's 'train' entry, of this version or an earlier one
    (whose model settings were fields of their own: depth, width, cnn_channels, ...)."""
    return cls(**upgraded(values))


# The model settings that were TrainConfig fields before each model declared its own: config
# name -> setting, per model. Read from earlier run directories only.
_LEGACY = {
    'mlp': {'depth': 'depth', 'width': 'width'},
    'cnn': {'cnn_channels': 'channels', 'width': 'width'},
    'resnet': {'resnet_width': 'width', 'resnet_blocks': 'blocks'},
}


def upgraded(train: Mapping[str, Any]) -> dict:
  """config.json's 'train' entry with an earlier version's model fields moved into
  model_settings (those of the run's model; the others were unused)."""
  train = dict(train)
  old = {
      k: train.pop(k)
      for k in ('depth', 'width', 'cnn_channels', 'resnet_width', 'resnet_blocks')
      if k in train
  }
  if old and 'model_settings' not in train:
    legacy = _LEGACY.get(train.get('model', 'mlp'), {})
    train['model_settings'] = {new: old[k] for k, new in legacy.items() if k in old}
  return train
