"""The paper's Discussion experiments: phi across activations and initialisation scales.

Both are sweeps (sweeps.py) over one train-config field at fixed data:

- `run_activations`: a 4 x 20 net on P = 8192 MNIST with every activation of SPEC §2 (relu,
  leaky_relu, silu, tanh, identity); per activation phi, t* and the fraction of seeds that
  invert, and the observables against training error;
- `run_init_scale`: the initialisation scale s (weights ~ U(-s/sqrt(n), s/sqrt(n)), variance
  s^2 / (3 n) for fan-in n) from well below to far above the point where the variance of the
  layers of fan-in H reaches 1/H (s = sqrt(3)); per scale phi, the rise of R+ after its minimum,
  the fraction of seeds that invert and the initial and final radii. These runs go the full
  --epochs (no stop rule by default): the size of the rise is the result.
"""

import dataclasses
import math
from typing import Callable, Dict, Sequence

import numpy as np

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.engine.models.layers import ACTIVATIONS
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import curves
from manifold_dynamics.plotting import discussion as plots
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.studies import sweeps
from manifold_dynamics.studies.skeleton import run_label

ACTIVATION_ORDER = ('relu', 'leaky_relu', 'silu', 'tanh', 'identity')
# Below, at and far above s = sqrt(3), where Var(w) * fan_in = s^2 / 3 = 1.
INIT_SCALES = (0.25, 0.5, 1.0, math.sqrt(3.0), 3.0, 6.0, 12.0, 24.0)


def _point_row(summary: dict) -> dict:
  fractions = summary['inversion_fraction']
  every = np.all([summary['inversion'][k] for k in history_lib.OBSERVABLES], axis=0)
  return {
      'phi_mean': summary['phi_mean'],
      'phi_std': summary['phi_std'],
      't_star_mean': summary['t_star_stats']['R_plus']['mean'],
      'inversion_fraction': fractions,
      'inversion_fraction_all': float(np.mean(every)),
      'rise_R_plus_mean': float(np.mean(summary['rise']['R_plus'])),
      'rise_R_plus_std': float(np.std(summary['rise']['R_plus'])),
      'epochs_trained': summary['epochs'],
      'initial': {k: summary['initial'][k]['mean'] for k in history_lib.OBSERVABLES},
      'final': {k: summary['final'][k]['mean'] for k in history_lib.OBSERVABLES},
      'final_train_error': summary['final']['train_error']['mean'],
      'final_test_error': summary['final']['test_error']['mean'],
  }


def _log_rows(rows: Dict[str, dict], log: Callable[[str], None]):
  width = max(len(k) for k in rows) if rows else 0
  for name, r in rows.items():
    log(
        f'{name:>{width}s}: phi = {r["phi_mean"]:.4f} +- {r["phi_std"]:.4f}, t*(R+) = '
        f'{r["t_star_mean"]:.1f}, inversion (R+, R- and D) in '
        f'{r["inversion_fraction_all"]:.0%} of seeds, R+ rises {r["rise_R_plus_mean"]:.3f}, '
        f'R+ {r["initial"]["R_plus"]:.3f} -> {r["final"]["R_plus"]:.3f}'
    )


def run_activations(
    activations: Sequence[str],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
) -> dict:
  """phi, t* and the fraction of inverting seeds per activation (Discussion)."""
  unknown = [a for a in activations if a not in ACTIVATIONS]
  if unknown:
    raise UserError(
        f'unknown activation {unknown[0]!r} in --activations; choose among '
        f'{", ".join(ACTIVATIONS)}.'
    )
  points = [
      sweeps.Point(a, data_cfg, dataclasses.replace(train_cfg, activation=a), {'activation': a})
      for a in dict.fromkeys(activations)
  ]
  sweep = sweeps.Sweep.run('activations', points, workdir, workers, log)
  done = sweep.done
  rows = {p.name: _point_row(s) for p, s in zip(done, sweep.summaries().values())}
  summary = sweep.write_summary({'activations': rows})
  if done:
    title = run_label(data_cfg, train_cfg, activation=False)
    histories = [sweep.load(p).history for p in done]
    labels = [
        f'{p.name}: $\\phi$={rows[p.name]["phi_mean"]:.3f}'
        if rows[p.name]['inversion_fraction']['R_plus'] > 0.5
        else f'{p.name}: R+ inverts in {rows[p.name]["inversion_fraction"]["R_plus"]:.0%}'
        for p in done
    ]
    sweep.draw(
        curves.observables_vs_train_error(histories, labels, title=title),
        'observables_vs_train_error',
    )
  _log_rows(rows, log)
  return sweep.close(summary)


def variance_times_width(scale: float) -> float:
  """Var(w) * n of every layer, n its fan-in: s^2 / 3 (= Var(w) * H for fan-in H)."""
  return scale**2 / 3.0


def run_init_scale(
    scales: Sequence[float],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
) -> dict:
  """phi, the rise of R+ and the fraction of inverting seeds per initialisation scale."""
  if any(not (s > 0 and math.isfinite(s)) for s in scales):
    raise UserError(f'--init_scales must be positive, got {list(scales)}.')
  points = [
      sweeps.Point(
          f's{s:.4g}',
          data_cfg,
          dataclasses.replace(train_cfg, init_scale=s),
          {'init_scale': s, 'variance_times_width': variance_times_width(s)},
      )
      for s in sorted(set(float(s) for s in scales))
  ]
  sweep = sweeps.Sweep.run('init_scale', points, workdir, workers, log)
  done = sweep.done
  rows = {}
  for p, s in zip(done, sweep.summaries().values()):
    rows[p.name] = dict(
        _point_row(s),
        init_scale=p.labels['init_scale'],
        variance_times_width=p.labels['variance_times_width'],
    )
  inverting = [r['init_scale'] for r in rows.values() if r['inversion_fraction']['R_plus'] > 0.5]
  lost = [
      r['init_scale']
      for r in rows.values()
      if r['inversion_fraction']['R_plus'] <= 0.5 and inverting and r['init_scale'] > max(inverting)
  ]
  summary = sweep.write_summary(
      {
          'scales': rows,
          'largest_scale_inverting': max(inverting) if inverting else None,
          'minimum_disappears_at': min(lost) if lost else None,
      }
  )
  if done:
    title = run_label(data_cfg, train_cfg)
    histories = {f's={p.labels["init_scale"]:.3g}': sweep.load(p).history for p in done}
    sweep.draw(plots.curve_vs_epoch_by(histories, 'R_plus', title), 'R_plus_vs_epoch')
    sweep.draw(plots.rise_vs_variance(list(rows.values()), title), 'rise_vs_variance')
  _log_rows(rows, log)
  if summary['minimum_disappears_at'] is not None:
    log(
        f'the minimum of R+ disappears (most seeds monotone) from s = '
        f'{summary["minimum_disappears_at"]:.3g} (Var(w) x H = '
        f'{variance_times_width(summary["minimum_disappears_at"]):.3g})'
    )
  return sweep.close(summary)
