"""Fig. 1a, 1c, 1d, 1e-f: the inversion is a property of the data, not of the run (SPEC §6).

Each `run_*` function trains its variants with the same engine as the inversion experiment,
writes one run directory (config.json, one history per variant, summary.json, figures) and
returns its summary:

- `run_before_after` (1a): R+, R-, D at initialisation and after training over many
  independent initialisations, trained in groups of seeds so that memory stays bounded;
- `run_subsampling` (1c): the same network on non-overlapping slices of the train split;
- `run_optimizers` (1d): the optimiser settings of SPEC §3;
- `run_random_labels` (1e-f): true labels against a random permutation of them.

Observables against training error are read at t(eps) (`inversion.at_train_error`).
"""

import dataclasses
from typing import Callable, Dict, Tuple

import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import get_info, load_raw, make_task
from manifold_dynamics.data.task import permute_labels
from manifold_dynamics.engine.train import DivergenceError, TrainData, fit, seed_keys
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import curves, style
from manifold_dynamics.plotting import robustness as plots
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import io
from manifold_dynamics.records.history import History
from manifold_dynamics.studies.skeleton import Study, run_label

# Fig. 1d settings (SPEC §3): name -> TrainConfig fields. Plain SGD is the reference.
OPTIMIZER_SETTINGS: Dict[str, dict] = {
    'sgd_lr0.2': dict(optimizer='sgd', lr=0.2),
    'adam_lr0.001': dict(optimizer='adam', lr=0.001),
    'adam_lr0.005': dict(optimizer='adam', lr=0.005),
    'sgd_wd0.01': dict(optimizer='sgd_wd', lr=0.2, weight_decay=0.01),
    'sgd_wd0.05': dict(optimizer='sgd_wd', lr=0.2, weight_decay=0.05),
    'momentum0.5_lr0.5': dict(optimizer='momentum', momentum=0.5, lr=0.5),
    'momentum0.9_lr0.2': dict(optimizer='momentum', momentum=0.9, lr=0.2),
}
# Line style by optimiser family, as in the paper's Fig. 1d.
FAMILY_LINESTYLE = {'adam': '-', 'sgd_wd': '--', 'momentum': ':', 'sgd': '-'}
ENDPOINTS = history_lib.OBSERVABLES + ('loss', 'train_error', 'test_error')

Variant = Tuple[DataConfig, TrainConfig, object]  # (data config, train config, Task)


def _train_variants(study: Study, variants: Dict[str, Variant]) -> Dict[str, History]:
  """Trains every variant in turn into history_<name>/ of the run directory."""
  histories = {}
  for name, (data_cfg, train_cfg, task) in variants.items():
    study.log(f'--- {name}')
    histories[name] = study.train(f'history_{name}', train_cfg, task=task, data_cfg=data_cfg)[0]
  return histories


def _variant_summary(history: History, inv: inversion_lib.Inversion) -> dict:
  """inversion.summary plus the run-level inversion flag (any of R+, R-, D inverts) and the
  mean t*(R+)."""
  out = inversion_lib.summary(history, inv)
  out['inversion_any'] = np.any([c.inverted for c in inv.curves.values()], axis=0).tolist()
  out['t_star_mean'] = out['t_star_stats']['R_plus']['mean']
  return out


def _log_variants(summaries: Dict[str, dict], log: Callable[[str], None]):
  width = max(len(name) for name in summaries)
  for name, s in summaries.items():
    inverted = s['inversion_fraction']
    log(
        f'{name:>{width}s}: phi = {s["phi_mean"]:.4f} +- {s["phi_std"]:.4f}, t*(R+) = '
        f'{s["t_star_mean"]:.1f} (R-: {s["t_star_stats"]["R_minus"]["mean"]:.1f}, D: '
        f'{s["t_star_stats"]["D"]["mean"]:.1f}), inversion R+/R-/D in '
        f'{inverted["R_plus"]:.0%}/{inverted["R_minus"]:.0%}/{inverted["D"]:.0%} of seeds, '
        f'final train error {s["final"]["train_error"]["mean"]:.4f}'
    )


def _spread(values) -> dict:
  values = np.asarray(values, np.float64)
  return {'mean': float(values.mean()), 'std': float(values.std())}


def run_before_after(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    seeds_per_group: int = 100,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 1a: R+, R-, D at initialisation and after `train_cfg.epochs` updates, for
  `train_cfg.seeds` independent initialisations.

  Seeds train `seeds_per_group` at a time (one vmapped program per group); seed s uses the
  same key as seed s of an inversion run with the same --seed. Only the endpoints, t* and phi
  of each seed are kept (samples.npz), written after every group, so a divergence keeps the
  finished groups.
  """
  if seeds_per_group < 1:
    raise UserError(f'--seeds_per_group must be positive, got {seeds_per_group}.')
  study = Study.open(
      'before_after',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      seeds_per_group=seeds_per_group,
  )
  data = TrainData.from_task(study.task)
  keys = seed_keys(train_cfg.seed, train_cfg.seeds)
  parts = []
  for start in range(0, train_cfg.seeds, seeds_per_group):
    stop = min(start + seeds_per_group, train_cfg.seeds)
    log(f'--- seeds {start}-{stop - 1} of {train_cfg.seeds}')
    cfg = dataclasses.replace(train_cfg, seeds=stop - start)
    try:
      history = fit(cfg, data, log=log, keys=keys[start:stop])
    except DivergenceError as e:
      kept = (
          f' The {start} seeds of the finished groups are kept in ' f'{study.file("samples.npz")}.'
          if parts
          else ''
      )
      raise UserError(f'{e}{kept}') from None
    parts.append(_endpoints(history))
    samples = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    io.write_npz(study.file('samples.npz'), **samples)

  summary = {
      'dataset': data_cfg.dataset,
      'seeds': train_cfg.seeds,
      'epochs': train_cfg.epochs,
      'train_size': data_cfg.train_size,
      'before': {k: _spread(samples[f'before_{k}']) for k in ENDPOINTS},
      'after': {k: _spread(samples[f'after_{k}']) for k in ENDPOINTS},
      'phi_mean': float(samples['phi'].mean()),
      'phi_std': float(samples['phi'].std()),
      'inversion_fraction': {
          k: float(samples[f'inversion_{k}'].mean()) for k in history_lib.OBSERVABLES
      },
  }
  study.write_summary(summary)
  study.draw(
      plots.before_after(
          {k: samples[f'before_{k}'] for k in history_lib.OBSERVABLES},
          {k: samples[f'after_{k}'] for k in history_lib.OBSERVABLES},
          f'{study.title}, {train_cfg.epochs} epochs',
      ),
      'before_after',
  )
  for k in history_lib.OBSERVABLES:
    b, a = summary['before'][k], summary['after'][k]
    log(
        f'{k:>7s}: before {b["mean"]:.4f} +- {b["std"]:.4f}, after {a["mean"]:.4f} +- '
        f'{a["std"]:.4f}'
    )
  log(f'phi = {summary["phi_mean"]:.4f} +- {summary["phi_std"]:.4f} over {train_cfg.seeds} seeds')
  study.commit()
  return summary


def _endpoints(history: History) -> Dict[str, np.ndarray]:
  """Per seed: every observable and error at epoch 0 and at the last epoch, t*, the inversion
  flags and phi."""
  inv = inversion_lib.analyse(history)
  out = {}
  for k in ENDPOINTS:
    values = getattr(history, k)
    out[f'before_{k}'], out[f'after_{k}'] = values[:, 0], values[:, -1]
  for k, c in inv.curves.items():
    out[f't_star_{k}'], out[f'inversion_{k}'], out[f'rise_{k}'] = c.t_star, c.inverted, c.rise
  out['phi'] = inv.phi
  return out


def run_subsampling(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    num_subsets: int = 4,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 1c: the same training on `num_subsets` non-overlapping slices of the train split,
  slices data_cfg.subset_index, +1, ...; each slice is [k*P, (k+1)*P)."""
  if num_subsets < 1:
    raise UserError(f'--num_subsets must be positive, got {num_subsets}.')
  first, P = data_cfg.subset_index, data_cfg.train_size

  def check(available: int):
    if (first + num_subsets) * P > available:
      most = available // P - first
      raise UserError(
          f'{num_subsets} slices of --train_size={P} from --subset_index={first} need '
          f'{(first + num_subsets) * P} training examples but {data_cfg.dataset} has '
          f'{available}; '
          + (
              f'use --num_subsets <= {most} or a smaller --train_size.'
              if most > 0
              else 'use a smaller --train_size or --subset_index.'
          )
      )

  check(get_info(data_cfg.dataset).train_examples)  # before fetching anything
  variants = {}

  def load_slices():
    raw = load_raw(data_cfg.dataset, data_cfg.data_dir, data_cfg.data_source, log=log)
    check(len(raw.x_train))  # local files may hold fewer examples
    for k in range(first, first + num_subsets):
      cfg = dataclasses.replace(data_cfg, subset_index=k)
      variants[f'subset{k}'] = (cfg, train_cfg, make_task(raw, P, k, data_cfg.dataset))
    return variants[f'subset{first}'][2]

  study = Study.open(
      'subsampling',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      task=load_slices,
      subsets=list(range(first, first + num_subsets)),
  )
  histories = _train_variants(study, variants)
  summaries = {name: _variant_summary(h, inversion_lib.analyse(h)) for name, h in histories.items()}
  phis = [s['phi_mean'] for s in summaries.values()]
  summary = {
      'dataset': data_cfg.dataset,
      'train_size': P,
      'seeds': train_cfg.seeds,
      'epochs': train_cfg.epochs,
      'subsets': summaries,
      'phi_mean_over_subsets': float(np.mean(phis)),
      'phi_std_over_subsets': float(np.std(phis)),
  }
  study.write_summary(summary)
  labels = [f'examples [{k * P}, {(k + 1) * P})' for k in range(first, first + num_subsets)]
  study.draw(
      curves.observables_vs_train_error(
          list(histories.values()),
          labels,
          title=f'{study.title}: '
          f'{num_subsets} non-overlapping slices, {train_cfg.seeds} seeds each',
      ),
      'observables_vs_train_error',
  )
  _log_variants(summaries, log)
  log(
      f'phi over slices: {summary["phi_mean_over_subsets"]:.4f} +- '
      f'{summary["phi_std_over_subsets"]:.4f}'
  )
  study.commit()
  return summary


def run_optimizers(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    settings=tuple(OPTIMIZER_SETTINGS),
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 1d: the observables against training error for the optimiser `settings` (names of
  OPTIMIZER_SETTINGS); everything else as in `train_cfg`. summary.json has one key per
  setting with its phi and t* (t* should move with the optimiser, phi should not)."""
  unknown = [s for s in settings if s not in OPTIMIZER_SETTINGS]
  if unknown or not settings:
    raise UserError(
        f'unknown optimiser setting(s) {", ".join(unknown) or "(none given)"}; '
        f'choose from {", ".join(OPTIMIZER_SETTINGS)}.'
    )
  study = Study.open(
      'optimizers',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      settings={name: OPTIMIZER_SETTINGS[name] for name in settings},
  )
  task = study.task
  configs = {name: dataclasses.replace(train_cfg, **OPTIMIZER_SETTINGS[name]) for name in settings}
  histories = _train_variants(study, {n: (data_cfg, c, task) for n, c in configs.items()})
  summary = {name: _variant_summary(h, inversion_lib.analyse(h)) for name, h in histories.items()}
  phis = [s['phi_mean'] for s in summary.values()]
  t_stars = [s['t_star_mean'] for s in summary.values()]
  summary['across_settings'] = {
      'phi_mean': float(np.mean(phis)),
      'phi_std': float(np.std(phis)),
      'phi_relative_spread': (float(np.std(phis) / np.mean(phis)) if np.mean(phis) > 0 else None),
      't_star_min': float(np.min(t_stars)),
      't_star_max': float(np.max(t_stars)),
  }
  study.write_summary(summary)
  families = [configs[n].optimizer for n in settings]
  colors = [
      {'adam': '#1f77b4', 'sgd_wd': '#d62728', 'momentum': '#2ca02c', 'sgd': 'black'}[f]
      for f in families
  ]
  shades = np.ones(len(settings))  # the second setting of a family is drawn lighter
  for i, f in enumerate(families):
    shades[i] = 1.0 if families[:i].count(f) == 0 else 0.55
  colors = [style.lighten(c, s) for c, s in zip(colors, shades)]
  study.draw(
      curves.observables_vs_train_error(
          list(histories.values()),
          [
              f'{n} (t*={summary[n]["t_star_mean"]:.0f}, phi={summary[n]["phi_mean"]:.3f})'
              for n in settings
          ],
          [FAMILY_LINESTYLE[f] for f in families],
          f'{run_label(data_cfg, train_cfg, optimizer=False)}, '
          f'{train_cfg.seeds} seeds per optimiser',
          colors=colors,
      ),
      'observables_vs_train_error',
  )
  _log_variants({n: summary[n] for n in settings}, log)
  across = summary['across_settings']
  spread = across['phi_relative_spread']
  log(
      f'phi across settings: {across["phi_mean"]:.4f} +- {across["phi_std"]:.4f} '
      f'({"n/a" if spread is None else f"{spread:.0%}"}); t*(R+) from '
      f'{across["t_star_min"]:.0f} to {across["t_star_max"]:.0f}'
  )
  study.commit()
  return summary


def run_random_labels(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 1e-f: the same training with the true labels and with a random permutation of them
  (drawn with train_cfg.seed; it keeps the class counts). A run shows an inversion when any
  of R+, R-, D does (SPEC §5); per-observable flags and rises are in the summary too."""
  study = Study.open('random_labels', data_cfg, train_cfg, workdir, overwrite=overwrite, log=log)
  task = study.task
  shuffled, permutation = permute_labels(task, np.random.default_rng(train_cfg.seed))
  io.write_npz(
      study.file('random_labels.npz'),
      permutation=permutation,
      y_train=shuffled.y_train,
      train_indices=task.train_indices,
  )
  histories = _train_variants(
      study,
      {
          'true_labels': (data_cfg, train_cfg, task),
          'random_labels': (data_cfg, train_cfg, shuffled),
      },
  )
  inversions = {name: inversion_lib.analyse(h) for name, h in histories.items()}
  summary = {}
  for name, h in histories.items():
    s = _variant_summary(h, inversions[name])
    summary[name] = dict(s, inversion=s['inversion_any'], inversion_by_observable=s['inversion'])
  study.write_summary(summary)
  study.draw(
      plots.compare_vs_epoch(histories, inversions, study.title),
      'random_labels_vs_epoch',
  )
  study.draw(
      curves.observables_vs_train_error(
          list(histories.values()),
          ['true labels', 'random labels'],
          title=study.title,
          colors=['#1f77b4', '0.5'],
      ),
      'observables_vs_train_error',
  )
  _log_variants(summary, log)
  for name, s in summary.items():
    log(
        f'{name}: inversion in {sum(s["inversion"])}/{len(s["inversion"])} seeds; median rise '
        + ', '.join(f'{k} {np.median(r):.4f}' for k, r in s['rise'].items())
    )
  study.commit()
  return summary
