r"""Validates --stop_after_inversion against full runs, seed by seed (run by hand).

    python benchmarks/early_stop.py --full_run=runs/inversion-mnist
    python benchmarks/early_stop.py --dataset=mnist --seeds=100      # trains the full run too
    python benchmarks/early_stop.py --full_run=A --stopped_run=B       # compares two runs only

A run directory of a sweep point is a run directory too: `--full_run=runs/act-full/points/relu
--stopped_run=runs/act/points/relu` checks a sweep's early stop against a full-length sweep.

Trains the configuration of the full run (same keys) with the stop rule, and compares per
seed: t* of R+, R- and D, phi and S(t*) (the stop run reads them from the epochs it trained),
as the global extremum (SPEC §5: an early stop cannot guarantee it) and as the first confirmed
one (SPEC §8, absolute and relative: the stop rule guarantees it).
It also replays the stop rule on the full history and reports, per observable, the largest
move back *before* the true extremum: the wiggle a confirmation threshold must exceed
(stopping.DEFAULT_MARGIN is chosen against it). Prints a report and writes it as JSON to
--output.
"""

import dataclasses
import json
import time

import numpy as np
from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.analysis import inversion
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.engine.stopping import InversionStop
from manifold_dynamics.engine.train import TrainData, fit
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import io
from manifold_dynamics.studies import skeleton

cli.define_run_flags(epochs=1000, seeds=100)
flags.DEFINE_string(
    'full_run',
    None,
    'A finished inversion run directory to compare with; '
    'without it the full run is trained here first.',
)
flags.DEFINE_string(
    'stopped_run',
    None,
    'An early-stopped run directory of the same '
    'configuration to compare with --full_run, instead of training one.',
)
flags.DEFINE_string('output', None, 'Write the report as JSON here.')
FLAGS = flags.FLAGS


def largest_false_move_back(curve_SxT: np.ndarray, kind: str) -> float:
  """Largest (value - running extremum) before each seed's true extremum, over seeds."""
  signed = history_lib.SIGN[kind] * np.asarray(curve_SxT, np.float64)[:, 1:]
  t_star = np.argmin(signed, axis=1)
  running = np.minimum.accumulate(signed, axis=1)
  before = np.arange(signed.shape[1])[None] < t_star[:, None]
  return float(np.max(np.where(before, signed - running, 0.0)))


def main(argv):
  cli.reject_arguments(argv)
  if FLAGS.stopped_run and not FLAGS.full_run:
    raise app.UsageError('--stopped_run is compared with --full_run: pass both.')
  if FLAGS.full_run:
    source = io.load_run(FLAGS.full_run)
    data_cfg = DataConfig(**source.config['data'])
    train_cfg = TrainConfig.from_dict(source.config['train'])
    full, full_seconds = source.history, None
  else:
    data_cfg, train_cfg = cli.configs_from_flags(FLAGS, {})
  train_cfg = dataclasses.replace(train_cfg, stop_after_inversion=False)
  if FLAGS.stopped_run:
    stopped, stop_seconds = io.load_run(FLAGS.stopped_run).history, None
  else:
    data = TrainData.from_task(load_task(data_cfg))
    if not FLAGS.full_run:
      tic = time.perf_counter()
      full = fit(train_cfg, data)
      full_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    stopped = fit(dataclasses.replace(train_cfg, stop_after_inversion=True), data)
    stop_seconds = time.perf_counter() - tic

  inv_full, inv_stop = inversion.analyse(full), inversion.analyse(stopped)
  report = {
      'config': {'data': dataclasses.asdict(data_cfg), 'train': dataclasses.asdict(train_cfg)},
      'seeds': full.num_seeds,
      'epochs_full': full.num_epochs,
      'epochs_stopped': stopped.num_epochs,
      'seconds_full': full_seconds,
      'seconds_stopped': stop_seconds,
      'environment': skeleton.environment(),
  }
  for name in history_lib.OBSERVABLES:
    a, b = inv_full.curves[name], inv_stop.curves[name]
    report[f't_star_differs_{name}'] = int(np.sum(a.t_star != b.t_star))
    report[f'inverted_differs_{name}'] = int(np.sum(a.inverted != b.inverted))
    report[f'largest_false_move_back_{name}'] = largest_false_move_back(getattr(full, name), name)
  # The first confirmed t* (SPEC §8), which the stop rule guarantees: always 0 differences.
  rho = train_cfg.inversion_rho
  for criterion, r in (('absolute', None), ('relative', rho)):
    a, b = (inversion.analyse(h, rule='first', rho=r) for h in (full, stopped))
    report[f'first_{criterion}_t_star_differs'] = int(
        sum(np.sum(a.curves[k].t_star != b.curves[k].t_star) for k in a.curves)
    )
    report[f'first_{criterion}_phi_differs'] = int(np.sum(a.phi != b.phi))
  report['phi_differs'] = int(np.sum(inv_full.phi != inv_stop.phi))
  report['phi_max_abs_difference'] = float(np.max(np.abs(inv_full.phi - inv_stop.phi)))
  report['phi_full'] = [float(inv_full.phi.mean()), float(inv_full.phi.std())]
  report['phi_stopped'] = [float(inv_stop.phi.mean()), float(inv_stop.phi.std())]
  sets_full = inversion.stragglers(full, inv_full.t_star)
  sets_stop = inversion.stragglers(stopped, inv_stop.t_star)
  report['stragglers_differ'] = int(
      sum(not np.array_equal(a, b) for a, b in zip(sets_full, sets_stop))
  )
  # Prefix equality: the stopped run is the full run's first epochs (same keys, same program).
  report['prefix_max_abs_difference'] = float(
      np.max(np.abs(full.R_plus[:, : stopped.num_epochs + 1] - stopped.R_plus))
  )
  rule = InversionStop(full.num_seeds, rho=rho)
  rule.update(full)
  report['confirmation_epoch_max'] = int(rule.confirmed_epoch.max())
  print(json.dumps(report, indent=2))
  if FLAGS.output:
    io.write_json(FLAGS.output, report)


if __name__ == '__main__':
  app.run(main)
