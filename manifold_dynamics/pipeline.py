"""Library side of the experiments: data -> training -> analysis -> run directory -> figures.

Entry points in experiments/ only parse flags, build the configs and call one function here.
"""

import dataclasses
import platform
import sys
import time
from typing import Callable

import jax
import numpy as np

import manifold_dynamics
from manifold_dynamics import inversion as inversion_lib
from manifold_dynamics import io, plotting
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.errors import UserError
from manifold_dynamics.train import DivergenceError, TrainData, fit


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


def default_workdir(experiment: str, data_cfg: DataConfig, train_cfg: TrainConfig) -> str:
  """runs/<experiment>-<dataset>-P..-L..xH..-<activation>-<optimizer>-lr..-S..-T.."""
  subset = f'-k{data_cfg.subset_index}' if data_cfg.subset_index else ''
  return (f'runs/{experiment}-{data_cfg.dataset}-P{data_cfg.train_size}{subset}-'
          f'L{train_cfg.depth}xH{train_cfg.width}-{train_cfg.activation}-{train_cfg.optimizer}-'
          f'lr{train_cfg.lr:g}-S{train_cfg.seeds}-T{train_cfg.epochs}')


def run_inversion(data_cfg: DataConfig, train_cfg: TrainConfig, workdir: str,
                  overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
  """Trains `train_cfg.seeds` nets on the task of `data_cfg` and writes the run directory.

  Returns the summary dict (also written to summary.json). On divergence the partial history
  is kept in the staging directory and a `UserError` names it.
  """
  run = io.RunDir(workdir, overwrite)  # refuses an existing run before any work
  task = load_task(data_cfg, log=log)
  io.write_json(run.file('config.json'), {
      'experiment': 'inversion',
      'data': dataclasses.asdict(data_cfg),
      'train': dataclasses.asdict(train_cfg),
      'task': {'num_inputs': int(task.x_train.shape[1]), 'num_test': int(len(task.y_test)),
               'fraction_positive': float(np.mean(task.y_train > 0))},
      'environment': environment(),
  })
  log(f'training {train_cfg.seeds} seeds x {train_cfg.epochs} epochs on {data_cfg.dataset} '
      f'(P={data_cfg.train_size}, {train_cfg.depth} layers x {train_cfg.width} '
      f'{train_cfg.activation}, {train_cfg.optimizer} lr={train_cfg.lr:g}) on '
      f'{jax.default_backend()}')
  try:
    history = fit(train_cfg, TrainData.from_task(task), log=log)
  except DivergenceError as e:
    io.save_history(run.file('history.npz'), e.history, task.train_indices)
    raise UserError(f'{e} Partial history kept in {run.staging}.') from None
  io.save_history(run.file('history.npz'), history, task.train_indices)

  inv = inversion_lib.analyse(history)
  sets = inversion_lib.stragglers(history, inv.t_star)
  io.save_stragglers(run.file('stragglers.npz'), sets, task.train_indices, inv.t_star)
  summary = inversion_lib.summary(history, inv)
  summary['dataset'] = data_cfg.dataset
  io.write_json(run.file('summary.json'), summary)

  title = (f'{data_cfg.dataset}, P={data_cfg.train_size}, {train_cfg.depth}x{train_cfg.width} '
           f'{train_cfg.activation}, {train_cfg.optimizer} lr={train_cfg.lr:g}')
  plotting.save(plotting.inversion_vs_epoch(history, inv, title), run.staging,
                'inversion_vs_epoch')
  plotting.save(plotting.observables_vs_train_error([history], title=title,
                                                    phi=summary['phi_mean']),
                run.staging, 'observables_vs_train_error')
  path = run.commit()
  log(format_summary(summary))
  log(f'results in {path}')
  return summary


def format_summary(summary: dict) -> str:
  """A few human-readable lines of a summary.json."""
  lines = [f'phi = {summary["phi_mean"]:.4f} +- {summary["phi_std"]:.4f} over '
           f'{summary["seeds"]} seeds; |S(t*)| = {summary["n_stragglers_mean"]:.1f} +- '
           f'{summary["n_stragglers_std"]:.1f} of {summary["train_size"]}']
  for name, stats in summary['t_star_stats'].items():
    lines.append(f't*({name}) in [{stats["min"]:.0f}, {stats["max"]:.0f}], mean '
                 f'{stats["mean"]:.1f}; inversion in '
                 f'{summary["inversion_fraction"][name]:.0%} of seeds')
  return '\n'.join(lines)
