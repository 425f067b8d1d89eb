"""Shared absl flags and error handling for the experiments/ entry points.

Entry points call `define_run_flags()` at import, then in `main` build the frozen configs with
`configs_from_flags(flags.FLAGS, quick=...)`, and wrap their work in `one_line_errors`, so
every `UserError` reaches the user as one line on stderr and a non-zero exit status.
"""

import contextlib
import dataclasses
import os
import sys
import typing
from typing import Callable, Dict, Optional

from absl import app, flags, logging

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data.registry import DATASETS
from manifold_dynamics.engine import distributed, models, train
from manifold_dynamics.engine.models.layers import ACTIVATIONS, MATMUL_PRECISIONS
from manifold_dynamics.engine.optimizers import OPTIMIZERS
from manifold_dynamics.errors import UserError, as_user_error
from manifold_dynamics.studies import skeleton, sweeps

_DATA = DataConfig()
_TRAIN = TrainConfig()


def define_run_flags(epochs: int = _TRAIN.epochs, seeds: int = _TRAIN.seeds):
  """Flags shared by every experiment that trains: data, model, optimiser, schedule, output.

  Idempotent: when a process imports several entry points (the tests do), the first one
  defines the flags.
  """
  if 'dataset' in flags.FLAGS:
    return
  # absl logs INFO by default (e.g. JAX's "Unable to initialize backend 'tpu'" on a CPU
  # machine); our progress lines are printed, so show warnings and errors only.
  logging.set_verbosity(logging.WARNING)
  define_config_flags(DataConfig)
  define_config_flags(TrainConfig, epochs=epochs, seeds=seeds)
  define_model_flags()
  flags.DEFINE_string('workdir', None, 'Run directory to write (default: runs/<name>).')
  flags.DEFINE_bool(
      'overwrite', False, 'Replace an existing run directory once the new run ' 'is complete.'
  )
  flags.DEFINE_bool('quick', False, 'Smoke setting that runs in seconds (explicit flags win).')
  flags.DEFINE_bool(
      'distributed',
      False,
      'One run over several processes (hosts): join them '
      'with jax.distributed.initialize(), which detects a TPU pod slice or a '
      'SLURM / Open MPI job; or give the three flags below (README).',
  )
  flags.DEFINE_string(
      'coordinator_address', None, 'host:port of process 0 (implies ' '--distributed).'
  )
  flags.DEFINE_integer('num_processes', None, 'Processes in the run (with --coordinator_address).')
  flags.DEFINE_integer('process_id', None, 'This process, in [0, num_processes).')


# The flags whose values are the names of an engine registry.
CHOICES = {
    'model': lambda: models.NAMES,
    'activation': lambda: tuple(ACTIVATIONS),
    'optimizer': lambda: tuple(OPTIMIZERS),
    'matmul_precision': lambda: MATMUL_PRECISIONS,
}


def define_config_flags(config_class, prefix: str = '', **defaults):
  """One flag per field of a config dataclass (--{prefix}{field}), from the field's type,
  default and help text (`config.setting`); `defaults` replace some defaults (an entry point's
  own). Fields marked flag=False (TrainConfig.model_settings) get none."""
  for field in dataclasses.fields(config_class):
    if field.metadata.get('flag') is False:
      continue
    name, kind, help_text = prefix + field.name, field.type, field.metadata['help']
    default = defaults.get(field.name, field.default)
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
      kind = next(t for t in typing.get_args(kind) if t is not type(None))
    choices = field.metadata['choices'] or (CHOICES.get(field.name) if not prefix else None)
    if typing.get_origin(kind) is tuple:
      flags.DEFINE_list(name, [str(v) for v in default], help_text)
    elif choices is not None:
      flags.DEFINE_enum(name, default, list(choices()), help_text)
    else:
      define = {
          bool: flags.DEFINE_bool,
          int: flags.DEFINE_integer,
          float: flags.DEFINE_float,
          str: flags.DEFINE_string,
      }[kind]
      define(name, default, help_text)


def define_model_flags():
  """The flags of every model's own settings (engine/models/<model>.py), --{prefix}{field}."""
  for name in models.NAMES:
    cls = models.settings_class(name)
    define_config_flags(cls, prefix=cls.flag_prefix)
    for flag in models.flags_of(name):
      flags.FLAGS[flag].help += f' (--model={name})'


def model_settings(
    flag_values, model: str, quick_overrides=None, quick=False, defaults=None, strict=True
):
  """The settings of `model` from its flags (with the entry point's `defaults` and
  `quick_overrides`, by flag name, as `configs_from_flags`). `strict`: a one-line error when a
  flag of another model's settings was set, which this run would silently ignore."""
  own = models.flags_of(model)
  for other in models.NAMES if strict else ():
    for flag in models.flags_of(other):
      if flag not in own and is_set(flag_values, flag):
        raise UserError(
            f'--{flag} is a setting of --model={other}, and this run trains --model={model}; '
            f'drop it, or set {", ".join("--" + f for f in own) or "nothing"} instead.'
        )
  values = _values(flag_values, own.keys(), quick_overrides or {}, quick, defaults or {})
  return {field.name: values[flag] for flag, field in own.items()}


def define_once(define, name: str, *args, **kwargs):
  """`define(name, ...)` unless another entry point of this process already defined `name`
  (the tests import several); the first definition, with its default, wins."""
  if name not in flags.FLAGS:
    define(name, *args, **kwargs)


def is_set(flag_values, name: str) -> bool:
  """Whether flag `name` was set, on the command line or in code (absl's flagsaver): the one
  rule by which an entry point's own defaults give way to the user's."""
  flag = flag_values[name]
  return bool(flag.present) or flag.value != flag.default


def _values(
    flag_values,
    names,
    quick_overrides: Dict[str, object],
    quick: bool,
    defaults: Dict[str, object],
):
  """{flag: value} of the flags `names`: as set, else the entry point's default, else (under
  --quick) its quick value."""
  values = {}
  for name in names:
    value = flag_values[name].value
    if not is_set(flag_values, name):
      value = defaults.get(name, value)
      if quick and name in quick_overrides:
        value = quick_overrides[name]
    values[name] = value
  return values


def quick_value(flag_values, name: str, quick: object):
  """The value of flag `name`, or `quick` under --quick when the flag was not set explicitly."""
  if flag_values.quick and not is_set(flag_values, name):
    return quick
  return flag_values[name].value


def _typed_list(flag_values, name: str, kind, what: str, quick: Optional[list]) -> list:
  values = flag_values[name].value if quick is None else quick_value(flag_values, name, quick)
  try:
    return [kind(v) for v in values]
  except ValueError:
    raise UserError(
        f'--{name} takes comma-separated {what}, got ' f'{",".join(map(str, values))}.'
    ) from None


def float_list(flag_values, name: str, quick: Optional[list] = None) -> list:
  """A list flag of numbers (its --quick value when given), or a one-line error."""
  return _typed_list(flag_values, name, float, 'numbers', quick)


def int_list(flag_values, name: str, quick: Optional[list] = None) -> list:
  """A list flag of integers (its --quick value when given), or a one-line error."""
  return _typed_list(flag_values, name, int, 'integers', quick)


def known_datasets(names) -> list:
  """Dataset names of a list flag, each checked against the registry."""
  unknown = [n for n in names if n not in DATASETS]
  if unknown or not names:
    raise UserError(
        f'unknown dataset {unknown[0]!r} in --datasets; choose among '
        f'{", ".join(sorted(DATASETS))}.'
        if unknown
        else '--datasets is empty.'
    )
  return list(dict.fromkeys(names))


def reject_arguments(argv):
  """absl's usage error for stray positional arguments (the entry points take flags only)."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')


def workdir(
    flag_values,
    experiment: str,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    with_optimizer: bool = True,
) -> str:
  """--workdir, or runs/<experiment>[-quick]-<settings> (skeleton.default_workdir)."""
  if flag_values.workdir:
    return flag_values.workdir
  name = experiment + ('-quick' if flag_values.quick else '')
  return skeleton.default_workdir(name, data_cfg, train_cfg, with_optimizer)


def configs_from_flags(
    flag_values,
    quick_overrides: Dict[str, object],
    defaults: Optional[Dict[str, object]] = None,
    strict_models: bool = True,
):
  """(DataConfig, TrainConfig) from parsed flags. `defaults` replace the shared flags'
  defaults for this entry point (e.g. a sweep's lr or stop rule), over the model's own
  defaults (`models.Settings.defaults`); under --quick, `quick_overrides` apply on top; a
  flag the user set explicitly always wins. The model's settings come from its own flags
  (`strict_models` False: another model's flags may be set too, for an entry point that
  trains several models). Every name the engine's registries hold is checked here, before
  any data is fetched."""
  join_processes(flag_values)
  quick = flag_values.quick
  model = flag_values.model
  defaults = {**models.settings_class(model).defaults, **(defaults or {})}
  names = lambda config: [f.name for f in dataclasses.fields(config) if f.metadata.get('flag', 1)]
  data = DataConfig(**_values(flag_values, names(DataConfig), quick_overrides, quick, defaults))
  values = _values(flag_values, names(TrainConfig), quick_overrides, quick, defaults)
  own = model_settings(flag_values, model, quick_overrides, quick, defaults, strict_models)
  train_cfg = TrainConfig(**values, model_settings=own)
  train.check(train_cfg)
  return data, models.resolve(train_cfg)


def join_processes(flag_values):
  """jax.distributed.initialize() under --distributed or --coordinator_address, once."""
  global _joined
  address = flag_values.coordinator_address
  if _joined or not (flag_values.distributed or address):
    return
  if address and (flag_values.num_processes is None or flag_values.process_id is None):
    raise UserError('--coordinator_address needs --num_processes and --process_id.')
  distributed.initialize(address, flag_values.num_processes, flag_values.process_id)
  _joined = True


_joined = False


# Sweeps need t*, phi and S(t*) only: stop once every seed has inverted, test at the end only.
SWEEP_DEFAULTS = dict(stop_after_inversion=True, test_every=0)


def define_sweep_flags(bootstrap: bool = True):
  """Flags of every sweep entry point: worker splitting, collecting, the fit's bootstrap."""
  define_once(
      flags.DEFINE_integer,
      'num_tasks',
      None,
      'Workers sharing the sweep (default: $SLURM_ARRAY_TASK_COUNT, else 1).',
  )
  define_once(
      flags.DEFINE_integer,
      'task_index',
      None,
      'This worker, in [0, num_tasks) (default: $SLURM_ARRAY_TASK_ID - '
      '$SLURM_ARRAY_TASK_MIN, $JOB_COMPLETION_INDEX, else 0).',
  )
  define_once(
      flags.DEFINE_bool,
      'collect_only',
      False,
      'Train nothing: rebuild summary.json and the figures from the complete points.',
  )
  if bootstrap:
    define_once(
        flags.DEFINE_integer,
        'bootstrap',
        200,
        'Bootstrap resamples over seeds for the intervals of the finite-size fit.',
    )


def sweep_workdir(flag_values, experiment: str, *parts: str) -> str:
  """--workdir, or runs/<experiment>[-quick]-<parts joined by '-'>."""
  if flag_values.workdir:
    return flag_values.workdir
  return 'runs/' + '-'.join([experiment + ('-quick' if flag_values.quick else '')] + list(parts))


def sweep_workers(flag_values) -> sweeps.Workers:
  """This process's share of a sweep, from the flags or the cluster's environment."""
  num_tasks, task_index = sweeps.worker_from_env(flag_values.num_tasks, flag_values.task_index)
  return sweeps.Workers(num_tasks, task_index, flag_values.collect_only)


def network_name(train_cfg: TrainConfig) -> str:
  """The model's part of a run or sweep directory name: 'L2xH20', 'cnn16-32x20', ..."""
  return models.settings(train_cfg).workdir_name(train_cfg)


def define_from_run(what: str = 'to analyse'):
  """--from_run: a finished run directory to build on, its settings replacing the flags."""
  define_once(
      flags.DEFINE_string,
      'from_run',
      None,
      f'A finished inversion run directory {what}; its data and training settings replace '
      'the flags.',
  )


def entry(body: Callable[[], None]) -> Callable[[list], None]:
  """The `main(argv)` of an entry point (for `app.run`) that runs `body()`: stray arguments
  are a usage error, and every UserError reaches the user as one line (`one_line_errors`)."""

  def main(argv):
    reject_arguments(argv)
    logging.set_verbosity(logging.WARNING)  # not JAX's INFO lines about backends it lacks
    with one_line_errors(argv[0]):
      body()

  return main


def study_main(experiment: str, run_study: Callable, quick: Dict[str, object], defaults=None):
  """`entry` of an entry point that trains one study with the shared flags:
  run_study(data_cfg, train_cfg, workdir, overwrite)."""

  def body():
    data_cfg, train_cfg = configs_from_flags(flags.FLAGS, quick, defaults)
    workdir_ = workdir(flags.FLAGS, experiment, data_cfg, train_cfg)
    run_study(data_cfg, train_cfg, workdir_, flags.FLAGS.overwrite)

  return entry(body)


@contextlib.contextmanager
def one_line_errors(program: str):
  """Turns a UserError, or XLA running out of memory, into `program: error: message` on
  stderr and exit status 1 (errors.as_user_error)."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    message = as_user_error(e)
    if message is None:
      raise
    sys.stderr.write(f'{os.path.basename(program)}: error: {message}\n')
    sys.exit(1)
