"""The skeleton every study shares: open the run directory, load the task, write the config,
train, analyse, draw the figures, commit.

A study (one module per experiment family in this package) supplies only its own analysis and
figures:

    study = Study.open('inversion', data_cfg, train_cfg, workdir, overwrite=overwrite, log=log)
    history, states = study.train('history')
    summary = ...  # the study's analysis (analysis/)
    study.write_summary(summary)
    study.draw(plots.inversion_vs_epoch(history, inv, study.title), 'inversion_vs_epoch')
    study.commit()

where `plots` is the study's own module of figures, plotting/<study>.py.

`Study.open` refuses an existing run directory before any work, resumes an interrupted one
(records/io.py), and with `from_run` builds on a finished run whose data and training settings
then replace the ones given. Entry points in experiments/ only parse flags, build the configs
and call one study function.
"""

import dataclasses
import os
import platform
import sys
import time
from typing import Any, Callable, Optional

import jax
import numpy as np

import manifold_dynamics
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.engine import distributed, models
from manifold_dynamics.engine.train import DivergenceError, TrainData, check, fit
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import style
from manifold_dynamics.records import io


@dataclasses.dataclass
class Study:
  """One run directory of one study, open for writing."""

  experiment: str
  run: io.RunDir
  data_cfg: DataConfig
  train_cfg: TrainConfig
  task: Any  # data.Task
  log: Callable[[str], None]
  source: Optional[io.Run] = None  # the finished run built on (from_run), if any
  model: Any = None  # a caller's Flax module (contract.py), else train_cfg.model

  @classmethod
  def open(
      cls,
      experiment: str,
      data_cfg: DataConfig,
      train_cfg: TrainConfig,
      workdir: str,
      *,
      overwrite: bool = False,
      log: Callable[[str], None] = print,
      task=None,
      model=None,
      from_run: Optional[str] = None,
      prepare: Optional[Callable[..., Optional[dict]]] = None,
      **config,
  ) -> 'Study':
    """Opens `workdir` (refusing an existing run before any work), reads `from_run` when
    given, calls `prepare(data_cfg, train_cfg, source)` (a study's own refusals, before any data is
    fetched; it may return more config entries that depend on the settings), loads the task
    (unless `task` is given: a Task, or a function that loads one) and writes config.json
    with the extra entries of `config`."""
    run = io.RunDir(workdir, overwrite, processes=distributed)
    source = None
    if from_run:
      source = io.load_run(from_run)
      data_cfg = DataConfig(**source.config['data'])
      train_cfg = TrainConfig.from_dict(source.config['train'])
      config = {'from_run': from_run, **config}
    check(train_cfg)
    if prepare is not None:
      config.update(prepare(data_cfg, train_cfg, source) or {})
    if task is None:
      task = load_task(data_cfg, log=log)
    elif callable(task):
      task = task()
    if model is not None:
      config['model'] = type(model).__name__
    write_config(run, experiment, data_cfg, train_cfg, task, **config)
    if task.truth is not None:
      save_truth(run, task)
    return cls(experiment, run, data_cfg, train_cfg, task, log, source, model)

  @property
  def title(self) -> str:
    """The figure title: the settings that tell this run apart (`run_label`)."""
    return run_label(self.data_cfg, self.train_cfg, self.model)

  @property
  def image_shape(self) -> Optional[tuple]:
    """(rows, cols) of the task's inputs when they are grey images (the figures that show
    examples draw them), else None (vectors, synthetic data, RGB)."""
    shape = self.task.input_shape
    if shape is not None and len(shape) == 3 and shape[-1] == 1:
      return tuple(shape[:2])
    return None

  @property
  def writer(self) -> bool:
    """False on the processes other than 0 of a multi-host run: they train, but write no
    results (`commit` then only cleans up)."""
    return self.run.writer

  def file(self, name: str) -> str:
    return self.run.file(name)

  def train(
      self,
      name: str,
      train_cfg: Optional[TrainConfig] = None,
      *,
      task=None,
      data_cfg: Optional[DataConfig] = None,
      **kwargs,
  ):
    """Trains train_cfg on task (default: the study's) into history `name`; returns the
    History and the final RunState (see `train_and_save` for `weights`, `data`)."""
    return train_and_save(
        self.run,
        name,
        data_cfg or self.data_cfg,
        train_cfg or self.train_cfg,
        self.task if task is None else task,
        self.log,
        model=self.model,
        **kwargs,
    )

  def write_summary(self, summary: dict):
    io.write_json(self.file('summary.json'), summary)

  def draw(self, fig, name: str):
    """Saves figure `fig` as NAME.png and NAME.pdf of the run."""
    style.save(fig, self.run.staging, name)

  def commit(self) -> str:
    """Moves the finished run into place and says where it is."""
    path = self.run.commit()
    if self.writer:
      self.log(f'results in {path}')
    return path


def run_label(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    model=None,
    optimizer: bool = True,
    activation: bool = True,
) -> str:
  """The settings that tell runs apart, as every figure title shows them (`model`: a caller's
  own Flax module, named by its class; `optimizer=False` or `activation=False` leave the
  optimiser or the activation out, for a figure whose curves differ in it)."""
  task = '' if data_cfg.task == 'parity' else f', {data_cfg.task}'
  batch = '' if train_cfg.batch_size is None else f', B={train_cfg.batch_size}'
  training = f', {train_cfg.optimizer} lr={train_cfg.lr:g}{batch}' if optimizer else ''
  network = models.label(train_cfg, model)
  if not activation and model is None:  # a model's label ends with its activation
    network = network.rsplit(' ', 1)[0]
  colour = ' rgb' if data_cfg.grey == 'rgb' else ''  # colour kept: not the grey dataset
  return f'{data_cfg.dataset}{colour}{task}, P={data_cfg.train_size}, {network}{training}'


def environment() -> dict:
  """Versions and devices, recorded in every config.json."""
  return {
      'manifold_dynamics_version': manifold_dynamics.__version__,
      'jax_version': jax.__version__,
      'python': platform.python_version(),
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
      'command': ' '.join(sys.argv),
      'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
  }


def default_workdir(
    experiment: str, data_cfg: DataConfig, train_cfg: TrainConfig, with_optimizer: bool = True
) -> str:
  """runs/<experiment>-<dataset>-P..-L..xH..-<activation>[-<optimizer>-lr..]-S..-T.."""
  subset = f'-k{data_cfg.subset_index}' if data_cfg.subset_index else ''
  subset += f'-noise{data_cfg.label_noise:g}' if data_cfg.label_noise else ''
  subset += (
      '' if data_cfg.task == 'parity' else '-' + data_cfg.task.replace(':', '').replace(',', '')
  )
  optimizer = f'-{train_cfg.optimizer}-lr{train_cfg.lr:g}' if with_optimizer else ''
  optimizer += '' if train_cfg.batch_size is None else f'-B{train_cfg.batch_size}'
  model = models.settings(train_cfg).workdir_name(train_cfg)
  dataset = data_cfg.dataset
  if ':' in dataset:  # tfds:NAME or npz:PATH
    kind, _, where = dataset.partition(':')
    dataset = kind + '_' + os.path.splitext(os.path.basename(where.rstrip('/')))[0]
  return (
      f'runs/{experiment}-{dataset}-P{data_cfg.train_size}{subset}-'
      f'{model}-{train_cfg.activation}{optimizer}-'
      f'S{train_cfg.seeds}-T{train_cfg.epochs}'
  )


def write_config(
    run: io.RunDir, experiment: str, data_cfg: DataConfig, train_cfg: TrainConfig, task, **extra
):
  """config.json, the first file of every run directory."""
  run.begin(
      {
          'experiment': experiment,
          'data': dataclasses.asdict(data_cfg),
          'train': dataclasses.asdict(models.resolve(train_cfg)),
          'task': task_info(task),
          **extra,
          'environment': environment(),
      }
  )


def task_info(task) -> dict:
  """What config.json says of a task: its inputs, test set and classes."""
  info = {
      'num_inputs': int(task.x_train.shape[1]),
      'num_test': int(len(task.y_test)),
  }
  if task.num_classes == 2:
    info['fraction_positive'] = float(np.mean(task.y_train > 0))
  else:
    info['num_classes'] = int(task.num_classes)
  if task.input_shape is not None and len(task.input_shape) > 1:
    info['input_shape'] = [int(d) for d in task.input_shape]
  if task.known:
    info['known'] = dict(task.known)
  return info


def save_truth(run: io.RunDir, task):
  """truth.npz: what is known of each example of T (synthetic data, flipped labels), with
  each example's index in the train split."""
  io.write_npz(
      run.file('truth.npz'),
      train_indices=np.asarray(task.train_indices, np.int64),
      **{k: np.asarray(v) for k, v in task.truth.items()},
  )


def train_and_save(
    run: io.RunDir,
    name: str,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    task,
    log: Callable[[str], None],
    weights=None,
    data=None,
    model=None,
):
  """Trains, streaming the history into the run directory as `name` (a directory, see
  io.py) and checkpointing as it goes, so that running the same command again resumes an
  interrupted training (or skips a finished one); a diverged run keeps its partial history.

  Returns the History and the final RunState of every run.
  """
  log(
      f'training {train_cfg.seeds} seeds x {train_cfg.epochs} epochs on '
      f'{run_label(data_cfg, train_cfg, model)} on {jax.default_backend()}'
  )
  data = TrainData.from_task(task) if data is None else data
  try:
    return fit(
        train_cfg,
        data,
        log=log,
        weights=weights,
        return_state=True,
        store=run.history_store(name, task.train_indices),
        model=model,
    )
  except DivergenceError as e:
    raise UserError(f'{e} Partial history kept in {run.file(name)}.') from None
