"""Fig. 3a, 3b, 3e: the straggler fraction phi as the training set grows (SPEC §6).

phi(P) is measured on sweeps over the training-set size P (sweeps.py) and fitted with the
finite-size form of SPEC §6 (analysis/finite_size.py). `run_scaling` does this per dataset
(Fig. 3b, with the observables against training error of Fig. 3a); `run_architectures` per
depth x width (Fig. 3e), with the overlap of the straggler sets across architectures.
"""

import dataclasses
import os
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from manifold_dynamics.analysis import stragglers as stragglers_lib
from manifold_dynamics.analysis.finite_size import fit_finite_size, phi_model
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import get_info, load_raw
from manifold_dynamics.engine import models
from manifold_dynamics.engine.models.layers import count_params
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import curves
from manifold_dynamics.plotting import scaling as plots
from manifold_dynamics.studies import sweeps

DEFAULT_TRAIN_SIZES = tuple(2**k for k in range(10, 16))  # 1024 ... 32768
ARCHITECTURE_TRAIN_SIZES = (4096, 8192, 16384, 32768)  # Fig. 3e: phi_inf fitted over these


def train_sizes_for(dataset: str, train_sizes: Optional[Sequence[int]]) -> List[int]:
  """The P values of a dataset: `train_sizes`, or the defaults plus the whole train split;
  a P larger than the split is a one-line error."""
  n = get_info(dataset).train_examples
  if train_sizes is None:
    return sorted(set([p for p in DEFAULT_TRAIN_SIZES if p <= n] + [n]))
  too_big = [p for p in train_sizes if p > n]
  if too_big:
    raise UserError(
        f'--train_sizes: P={too_big[0]} is larger than the {dataset} train split '
        f'({n} examples); use values <= {n}.'
    )
  if any(p <= 0 for p in train_sizes):
    raise UserError(f'--train_sizes must be positive, got {list(train_sizes)}.')
  return sorted(set(int(p) for p in train_sizes))


def dataset_dir(data_dir: Optional[str], dataset: str, several: bool) -> Optional[str]:
  """The --data_dir of one dataset: the directory itself for a one-dataset sweep, its
  subdirectory named after the dataset for several (None when that does not exist)."""
  if not data_dir or not several:
    return data_dir
  sub = os.path.join(data_dir, dataset)
  return sub if os.path.isdir(sub) else None


def available(
    dataset: str, data_dir: Optional[str], data_source: str, log: Callable[[str], None]
) -> bool:
  """Whether `dataset` can be read without a registry copy (KMNIST: --data_dir or TFDS)."""
  if get_info(dataset).registry_package is not None:
    return True
  try:
    load_raw(dataset, data_dir, data_source, log=log)
  except UserError as e:
    log(f'note: {dataset} left out of the sweep: {e}')
    return False
  return True


def _per_point(summaries: Dict[str, dict]) -> Dict[str, dict]:
  """The headline numbers of each complete point."""
  out = {}
  for name, s in summaries.items():
    out[name] = {
        'phi_mean': s['phi_mean'],
        'phi_std': s['phi_std'],
        't_star_mean': s['t_star_stats']['R_plus']['mean'],
        'inversion_fraction': s['inversion_fraction'],
        'epochs_trained': s['epochs'],
        'test_error_mean': s['final']['test_error']['mean'],
        'n_stragglers_mean': s['n_stragglers_mean'],
    }
  return out


def _fit_groups(
    groups: Dict[str, List],
    summaries: Dict[str, dict],
    bootstrap: int,
    seed: int,
    log: Callable[[str], None],
) -> Dict[str, dict]:
  """Per group (dataset or architecture): phi per P and the finite-size fit. A P where most
  seeds do not invert on R+ has no straggler fraction to speak of (its "t*" is the last epoch
  trained): it is reported but left out of the fit."""
  out = {}
  for label, points in groups.items():
    points = sorted(points, key=lambda p: p.data.train_size)
    rows, fitted, excluded = {}, [], []
    for p in points:
      s = summaries[p.name]
      phi = np.asarray(s['phi'], np.float64)
      rows[str(p.data.train_size)] = {
          'phi_mean': float(phi.mean()),
          'phi_std': float(phi.std()),
          't_star_mean': s['t_star_stats']['R_plus']['mean'],
          'inversion_fraction': s['inversion_fraction']['R_plus'],
      }
      if s['inversion_fraction']['R_plus'] > 0.5:
        fitted.append((p.data.train_size, phi))
      else:
        excluded.append(p.data.train_size)
    if excluded:
      log(
          f'note: {label}: most seeds do not invert at P = {", ".join(map(str, excluded))}; '
          f'left out of the fit.'
      )
    fit = fit_finite_size([P for P, _ in fitted], [phi for _, phi in fitted], bootstrap, seed)
    if fit.message:
      log(f'note: {label}: {fit.message}')
    out[label] = {
        'train_sizes': [p.data.train_size for p in points],
        'by_train_size': rows,
        'excluded_from_fit': excluded,
        'fit': fit.to_json(),
    }
  return out


def _fit_line(label: str, fit: dict) -> str:
  if not fit['converged']:
    return f'{label}: no fit ({fit["message"]})'
  ci = fit['intervals'].get('phi_inf', [np.nan, np.nan])
  return (
      f'{label}: phi_inf = {fit["phi_inf"]:.4f} [{ci[0]:.4f}, {ci[1]:.4f}], '
      f'P0 = {fit["P0"]:.3g}, gamma = {fit["gamma"]:.3g}, chi2/dof = '
      f'{fit["chi2_per_dof"]:.3g}'
  )


def run_scaling(
    datasets: Sequence[str],
    train_sizes: Optional[Sequence[int]],
    train_cfg: TrainConfig,
    workdir: str,
    data_dir: Optional[str] = None,
    data_source: str = 'auto',
    bootstrap: int = 200,
    workers: sweeps.Workers = sweeps.Workers(),
    eps_figure_size: int = 8192,
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 3a-b: phi against P for every dataset, with the finite-size fit."""
  several = len(datasets) > 1
  points = []
  for dataset in datasets:
    sizes = train_sizes_for(dataset, train_sizes)
    directory = dataset_dir(data_dir, dataset, several)
    if not available(dataset, directory, data_source, log):
      continue
    for P in sizes:
      data_cfg = DataConfig(
          dataset=dataset, train_size=P, data_dir=directory, data_source=data_source
      )
      points.append(
          sweeps.Point(
              f'{dataset}-P{P}', data_cfg, train_cfg, {'dataset': dataset, 'train_size': P}
          )
      )
  if not points:
    raise UserError('no dataset of --datasets could be read; see the notes above.')
  sweep = sweeps.Sweep.run('scaling', points, workdir, workers, log, {'bootstrap': bootstrap})
  summaries = sweep.summaries()
  groups: Dict[str, list] = {}
  for p in sweep.done:
    groups.setdefault(p.labels['dataset'], []).append(p)
  summary = sweep.write_summary(
      {
          'points': _per_point(summaries),
          'datasets': _fit_groups(groups, summaries, bootstrap, train_cfg.seed, log),
      }
  )

  title = (
      f'{models.label(train_cfg)}, '
      f'{train_cfg.optimizer} lr={train_cfg.lr:g}, {train_cfg.seeds} seeds'
  )
  if groups:
    sweep.draw(plots.phi_vs_train_size(summary['datasets'], phi_model, title), 'phi_vs_train_size')
    # Fig. 3a at one P per dataset: the requested one, else the largest complete one below it.
    histories, labels = [], []
    for dataset, pts in groups.items():
      below = [p for p in pts if p.data.train_size <= eps_figure_size] or pts
      pick = max(below, key=lambda p: p.data.train_size)
      histories.append(sweep.load(pick).history)
      labels.append(f'{dataset} (P={pick.data.train_size})')
    sweep.draw(
        curves.observables_vs_train_error(
            histories, labels, title=title if len(labels) > 1 else f'{labels[0]}, {title}'
        ),
        'observables_vs_train_error',
    )
  for label, g in summary['datasets'].items():
    for P, row in g['by_train_size'].items():
      log(
          f'{label:>14s} P={P:>6s}: phi = {row["phi_mean"]:.4f} +- {row["phi_std"]:.4f}, '
          f't*(R+) = {row["t_star_mean"]:.1f}'
      )
    log(_fit_line(label, g['fit']))
  return sweep.close(summary)


def run_architectures(
    depths: Sequence[int],
    widths: Sequence[int],
    train_sizes: Sequence[int],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    bootstrap: int = 200,
    overlap_size: Optional[int] = None,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 3e: phi_inf per depth x width (fit over `train_sizes`) against the number of
  parameters, and the overlap z of the straggler sets across architectures at P =
  `overlap_size` (default: the P of data_cfg if swept, else the largest)."""
  sizes = train_sizes_for(data_cfg.dataset, train_sizes)
  archs = [(int(d), int(w)) for d in depths for w in widths]
  if any(d < 2 or w < 1 for d, w in archs):
    raise UserError(
        f'--depths must be >= 2 and --widths >= 1, got {list(depths)} and ' f'{list(widths)}.'
    )
  points = [
      sweeps.Point(
          f'L{d}xH{w}-P{P}',
          dataclasses.replace(data_cfg, train_size=P),
          train_cfg.with_model(depth=d, width=w),
          {'depth': d, 'width': w, 'train_size': P},
      )
      for d, w in archs
      for P in sizes
  ]
  overlap_size = overlap_size or (
      data_cfg.train_size if data_cfg.train_size in sizes else max(sizes)
  )
  settings = {'bootstrap': bootstrap, 'overlap_size': overlap_size}
  sweep = sweeps.Sweep.run('architectures', points, workdir, workers, log, settings)
  done, summaries = sweep.done, sweep.summaries()
  groups: Dict[str, list] = {}
  for p in done:
    groups.setdefault(f'{p.labels["depth"]}x{p.labels["width"]}', []).append(p)
  fits = _fit_groups(groups, summaries, bootstrap, train_cfg.seed, log)
  num_inputs = get_info(data_cfg.dataset).num_inputs
  for label, g in fits.items():
    d, w = (int(v) for v in label.split('x'))
    mlp = models.build(train_cfg.with_model(depth=d, width=w), 2)
    g.update(depth=d, width=w, num_params=count_params(mlp, (num_inputs,)))
  overlaps = _architecture_overlaps(sweep, [p for p in done if p.data.train_size == overlap_size])
  summary = sweep.write_summary(
      {
          'points': _per_point(summaries),
          'architectures': fits,
          'overlap_train_size': overlap_size,
          'overlap': overlaps,
      }
  )
  title = (
      f'{data_cfg.dataset}, {train_cfg.activation}, {train_cfg.optimizer} '
      f'lr={train_cfg.lr:g}, {train_cfg.seeds} seeds'
  )
  if fits:
    sweep.draw(plots.phi_inf_vs_params(fits, title), 'phi_inf_vs_params')
    sweep.draw(plots.phi_vs_train_size(fits, phi_model, title), 'phi_vs_train_size')
  if overlaps:
    names = list(dict.fromkeys([r['run_0'] for r in overlaps] + [r['run_1'] for r in overlaps]))
    sweep.draw(
        plots.overlap_matrix(names, overlaps, f'{title}, P={overlap_size}'),
        'overlap_by_architecture',
    )
  for label, g in fits.items():
    log(f'{label:>6s} ({g["num_params"]:>6d} parameters): ' + _fit_line('', g['fit']).lstrip(': '))
  return sweep.close(summary)


def _architecture_overlaps(sweep: sweeps.Sweep, points: Sequence[sweeps.Point]) -> List[dict]:
  """Straggler overlap between every pair of architectures trained on the same P: seed i of
  one against seed i+1 of the other (within one architecture: disjoint seed pairs), as in the
  stragglers experiment."""
  sets, size = {}, None
  for p in sorted(points, key=lambda p: (p.labels['depth'], p.labels['width'])):
    run = sweep.load(p)
    sets[f'{p.labels["depth"]}x{p.labels["width"]}'] = stragglers_lib.at_t_star(run.history)
    size = run.history.num_examples
  names, rows = list(sets), []
  for i, a in enumerate(names):
    for b in names[i:]:
      if len(sets[a]) < 2 or len(sets[b]) < 2:
        continue
      if a == b:
        ov = stragglers_lib.within_run_overlap(sets[a], size)
      else:
        shifted = [sets[b][(k + 1) % len(sets[b])] for k in range(len(sets[a]))]
        ov = stragglers_lib.overlap(sets[a], shifted[: len(sets[a])], size)
      rows.append(dict(run_0=a, run_1=b, **ov.summary()))
  return rows
