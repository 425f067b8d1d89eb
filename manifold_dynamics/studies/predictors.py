"""What phi measures (issue 20): predictors that train no network, beside phi and S(t*).

`run_predictors` reads a finished inversion run (`from_run`) or trains one, computes on the
same standardised T the predictors of analysis/predictors.py (the best linear classifier, the
k-NN leave-one-out errors, the TwoNN dimension), compares each with phi and with the stragglers
of every seed, and, on data whose structure is known (data/synthetic.py, label noise), how far
S(t*) coincides with the known hard examples.

`run_synthetic` sweeps one family of known structure over the parameter that sets its
difficulty (SPEC §8): the separation of the Gaussian clouds (so the Bayes error), the
intrinsic dimension of the hidden manifold, the label-noise fraction, the tail fraction; per
point the same analysis, and phi against the parameter beside the predictors and the Bayes
error.
"""

import dataclasses
import itertools
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from manifold_dynamics.analysis import finite_size, predictors
from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.data.task import standardise
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import predictors as plots
from manifold_dynamics.records.examples import write_examples_csv
from manifold_dynamics.studies import sweeps
from manifold_dynamics.studies.skeleton import Study, run_label

# Family -> (its DataConfig field, a default grid of values, the dataset it sweeps).
FAMILIES = {
    'gaussians': ('separation', (0.25, 0.5, 1.0, 1.5, 2.0, 3.0), 'synthetic:gaussians'),
    'hidden_manifold': ('latent_dim', (2, 5, 10, 20, 50), 'synthetic:hidden_manifold'),
    'label_noise': ('label_noise', (0.0, 0.05, 0.1, 0.2, 0.3), 'synthetic:gaussians'),
    'long_tail': ('tail_fraction', (0.0, 0.02, 0.05, 0.1, 0.2), 'synthetic:long_tail'),
}


def analyse_run(history, task, rule: str = 'global') -> Tuple[dict, Dict[str, np.ndarray]]:
  """(summary, per-example columns) of a finished run on `task`: phi, the predictors beside
  it and beside S(t*), and the agreement of S(t*) with the task's known structure."""
  inv = inversion_lib.analyse(history, rule=rule)
  sets = inversion_lib.stragglers(history, inv.t_star)
  P = history.num_examples
  (x,), _, _ = standardise(task.x_train)
  found, dimension = predictors.all_predictors(x, task.y_train)
  frequency = predictors.straggler_frequency(sets, P)
  summary = {
      'seeds': history.num_seeds,
      'train_size': P,
      't_star_rule': rule,
      'phi_mean': float(inv.phi.mean()),
      'phi_std': float(inv.phi.std()),
      'phi': inv.phi.tolist(),
      'inversion_fraction': {k: float(c.inverted.mean()) for k, c in inv.curves.items()},
      'n_stragglers_mean': float(np.mean([len(s) for s in sets])),
      'twonn_dimension': dimension,
      'predictors': {k: predictors.compare(p, sets, P) for k, p in found.items()},
      'known': dict(task.known or {}),
      'criteria': inversion_lib.criteria(history, reference=inv),
  }
  if task.truth:
    summary['truth'] = predictors.truth_agreement(task.truth, sets, P)
  columns = {
      'straggler_frequency_of_run': frequency,
      'linear_margin': -found['linear'].hardness,
      'linear_wrong': found['linear'].wrong,
      'knn1_wrong': found['knn1'].wrong,
      'knn10_wrong': found['knn10'].wrong,
      'knn10_other_class': found['knn10'].hardness,
      **{f'truth_{k}': v for k, v in (task.truth or {}).items()},
  }
  return summary, columns


def _marked(task) -> Tuple[Optional[np.ndarray], str]:
  """The known hard examples a figure marks, and their name."""
  for name, label in (
      ('flipped', 'flipped labels'),
      ('tail', 'rare sub-clusters'),
      ('bayes_wrong', 'beyond the Bayes boundary'),
  ):
    if task.truth and name in task.truth:
      return np.asarray(task.truth[name], bool), label
  return None, ''


def format_summary(summary: dict) -> str:
  lines = [
      f'phi = {summary["phi_mean"]:.4f} +- {summary["phi_std"]:.4f}; TwoNN dimension '
      f'{summary["twonn_dimension"]:.1f}'
      + ''.join(f', {k} {v:.4g}' for k, v in summary['known'].items())
  ]
  for name, p in summary['predictors'].items():
    rho = p['spearman_with_straggler_frequency']
    z = p['z_null']
    lines.append(
        f'{name:>7s}: error {p["error"]:.4f}, Jaccard with S(t*) {p["jaccard_mean"]:.3f}, '
        f'z {"n/a" if z is None else f"{z:.1f}"}, Spearman with straggler frequency '
        f'{"n/a" if rho is None else f"{rho:.3f}"}'
    )
  for name, t in summary.get('truth', {}).items():
    lines.append(f'  truth {name}: ' + ', '.join(f'{k} {v}' for k, v in t.items()))
  return '\n'.join(lines)


def run_predictors(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    from_run: Optional[str] = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """The predictors of a run (`from_run`, or trained here): summary.json, examples.csv and the
  figure predictors_beside_phi."""

  def prepare(data_cfg, train_cfg, source):
    if source is not None and source.summary is None:
      raise UserError(f'{from_run} is not a finished run; finish it (rerun its command) first.')

  study = Study.open(
      'predictors',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      from_run=from_run,
      prepare=prepare,
  )
  history = study.source.history if study.source else study.train('history')[0]
  if not study.writer:
    study.commit()
    return None
  summary, columns = analyse_run(history, study.task, study.train_cfg.t_star_rule)
  summary['dataset'] = study.data_cfg.dataset
  study.write_summary(summary)
  frequency = columns.pop('straggler_frequency_of_run')
  write_examples_csv(
      study.file('examples.csv'),
      {},
      study.task,
      per_example={'straggler_frequency': frequency, **columns},
  )
  marked, label = _marked(study.task)
  study.draw(
      plots.predictors_beside_phi(
          np.asarray(summary['phi']),
          {k: p['error'] for k, p in summary['predictors'].items()},
          frequency,
          columns['linear_margin'],
          summary['known'],
          marked,
          label,
          study.title,
      ),
      'predictors_beside_phi',
  )
  log(format_summary(summary))
  study.commit()
  return summary


def run_synthetic(
    family: str,
    values: Optional[Sequence[float]],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
    train_sizes: Sequence[int] = (),
) -> dict:
  """phi against the parameter that sets a family's difficulty, one run per value (a sweep:
  resumable, splittable), each analysed by `analyse_run`. With several `train_sizes` every
  value is also trained at each P and phi(P) fitted with the finite-size form (phi_inf,
  analysis/finite_size.py); the rows and the figure are those of the largest P."""
  if family not in FAMILIES:
    raise UserError(f'unknown --family={family!r}; choose one of {", ".join(FAMILIES)}.')
  field, grid, dataset = FAMILIES[family]
  values = list(grid if not values else values)
  kind = int if field == 'latent_dim' else float
  sizes = sorted(set(int(P) for P in train_sizes)) or [data_cfg.train_size]
  if sizes[0] <= 0:
    raise UserError(f'--train_sizes must be positive, got {list(train_sizes)}.')
  points = []
  for v, P in itertools.product(dict.fromkeys(values), sizes):
    cfg = dataclasses.replace(data_cfg, dataset=dataset, train_size=P, **{field: kind(v)})
    name = f'{field}{kind(v):g}' + (f'-P{P}' if len(sizes) > 1 else '')
    points.append(sweeps.Point(name, cfg, train_cfg, {field: kind(v), 'train_size': P}))
  sweep = sweeps.Sweep.run(f'synthetic_{family}', points, workdir, workers, log)
  rows, phis = [], {}
  for point in sweep.done:
    run = sweep.load(point)
    v, P = point.labels[field], point.labels['train_size']
    if P != sizes[-1]:
      phis.setdefault(v, {})[P] = np.asarray(run.summary['phi'])
      continue
    task = load_task(point.data, log=lambda _: None)
    row, _ = analyse_run(run.history, task, point.train.t_star_rule)
    row[field] = v
    phis.setdefault(v, {})[P] = np.asarray(row['phi'])
    rows.append(row)
  summary = {'parameter': field, 'train_sizes': sizes, 'rows': rows}
  if len(sizes) > 1:
    summary['phi_inf'] = {}
    for v, by_size in phis.items():
      fit = finite_size.fit_finite_size(list(by_size), list(by_size.values()))
      summary['phi_inf'][f'{v:g}'] = {
          'phi_by_train_size': {str(P): float(np.mean(x)) for P, x in by_size.items()},
          **fit.to_json(),
      }
  bayes = np.array([r['known'].get('bayes_error', np.nan) for r in rows])
  if len(rows) > 1 and np.all(np.isfinite(bayes)) and np.ptp(bayes) > 0:
    phi = np.array([r['phi_mean'] for r in rows])
    slope, intercept = np.polyfit(bayes, phi, 1)
    summary['phi_against_bayes_error'] = {
        'slope': float(slope),
        'intercept': float(intercept),
        'ratio': (phi / np.where(bayes > 0, bayes, np.nan)).tolist(),
    }
  summary = sweep.write_summary(summary)
  if rows:
    title = run_label(
        dataclasses.replace(data_cfg, dataset=dataset, train_size=sizes[-1]), train_cfg
    )
    sweep.draw(
        plots.phi_against_difficulty(field, [r[field] for r in rows], rows, title),
        'phi_against_difficulty',
    )
  for r in rows:
    p = r['predictors']
    fit = summary.get('phi_inf', {}).get(f'{r[field]:g}')
    log(
        f'{field} = {r[field]:g}: phi = {r["phi_mean"]:.4f} +- {r["phi_std"]:.4f}, linear '
        f'{p["linear"]["error"]:.4f}, 1-NN {p["knn1"]["error"]:.4f}, 10-NN '
        f'{p["knn10"]["error"]:.4f}'
        + ''.join(f', {k} {v:.4g}' for k, v in r['known'].items())
        + (f', phi_inf {fit["phi_inf"]:.4f}' if fit else '')
    )
  return sweep.close(summary)
