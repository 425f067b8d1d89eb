"""Models by name, one module per model (big_vision's `models.<name>`), each with its own
settings and default hyperparameters beside it (init2winit's registry).

A model's module defines its Flax module and a frozen dataclass `Settings(models.Settings)`:

  fields          the model's own settings, each a `config.setting` (its flag is
                  --{flag_prefix}{field}: --depth, --cnn_channels, --vit_patch ...);
  flag_prefix     the prefix of its flags ('' for the paper's MLP);
  defaults        default values of shared TrainConfig settings for this model (e.g. its lr);
  label(cfg)      the network in a few words, for titles and log lines;
  build(cfg, K)   the Flax module under the model contract (`contract.py`);
  network(cfg, data)   optionally, a faster `contract.Network` of its own for a task, or None
                  (then the engine runs the module through `contract.ModuleNetwork`).

TrainConfig holds the chosen model's name and its settings as a plain mapping
(`model_settings`); `settings(cfg)` turns that into the model's dataclass, defaults filled in
and checked. To add a model: write models/NAME.py, and add NAME to NAMES below.
"""

import dataclasses
import importlib
import types
from typing import ClassVar, Dict, Mapping, Optional

from manifold_dynamics.errors import UserError

NAMES = ('mlp', 'cnn', 'resnet', 'vit')  # the registration: one module of this package each


@dataclasses.dataclass(frozen=True)
class Settings:
  """The settings of one model (see the module docstring); subclasses add the fields."""

  flag_prefix: ClassVar[str] = ''
  defaults: ClassVar[Mapping[str, object]] = types.MappingProxyType({})

  def label(self, cfg) -> str:
    raise NotImplementedError

  def build(self, cfg, num_classes: int):
    raise NotImplementedError

  def network(self, cfg, data):
    """A faster `contract.Network` of this model for `data`, or None (the default)."""
    del cfg, data
    return None

  def workdir_name(self, cfg) -> str:
    """The model's part of a default run directory name: its label without the activation."""
    return self.label(cfg).rsplit(' ', 1)[0].replace(' ', '').replace('/', 'x')


def settings_class(name: str) -> type:
  """The Settings class of model `name`, its module imported on first use."""
  if name not in NAMES:
    raise UserError(f'unknown --model={name!r}; choose one of {", ".join(NAMES)}.')
  return importlib.import_module(f'{__name__}.{name}').Settings


def flags_of(name: str) -> Dict[str, dataclasses.Field]:
  """{flag name: field} of model `name`'s own settings."""
  cls = settings_class(name)
  return {cls.flag_prefix + f.name: f for f in dataclasses.fields(cls)}


def settings(cfg) -> Settings:
  """The model settings of TrainConfig `cfg`: cfg.model_settings over the model's defaults,
  checked (a one-line error naming the flag of a setting it does not know)."""
  cls = settings_class(cfg.model)
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = [k for k in cfg.model_settings if k not in known]
  if unknown:
    raise UserError(
        f'--model={cfg.model} has no setting {unknown[0]!r}; its settings are '
        f'{", ".join("--" + cls.flag_prefix + k for k in sorted(known)) or "none"}.'
    )
  return cls(**cfg.model_settings)


def build(cfg, num_classes: int):
  """The Flax module of cfg.model for a task of `num_classes` classes."""
  return settings(cfg).build(cfg, num_classes)


def label(cfg, model=None) -> str:
  """'2x20 tanh', 'cnn 16-32/20 tanh', ...; a caller's own module by its class name."""
  return type(model).__name__ if model is not None else settings(cfg).label(cfg)


def resolved(cfg) -> Dict[str, object]:
  """cfg.model_settings with the model's defaults filled in, as config.json records them."""
  return dataclasses.asdict(settings(cfg))


def resolve(cfg):
  """`cfg` with its model settings resolved (`resolved`): what config.json records, and what
  compares equal to any config of the same run."""
  return dataclasses.replace(cfg, model_settings=resolved(cfg))


def network(cfg, data, model=None) -> Optional[object]:
  """The model's own network for this task, when it has one and no caller's module is given."""
  return None if model is not None else settings(cfg).network(cfg, data)
