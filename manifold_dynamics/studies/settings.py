"""Does the inversion survive outside the paper's setting? (issue 19, SPEC §8)

A sweep (sweeps.py: resumable, splittable over workers) over

  model    mlp (2 x 20, the reference), cnn (two 3x3 conv blocks, then dense), resnet (narrow,
           no normalisation);
  task     parity, classes (all ten, K-way softmax);
  batch    full (GD) and 128 (mini-batch SGD);
  dataset  mnist, fashion_mnist, cifar10 (grey), and cifar10_rgb (three channels) for the conv
           models;

one inversion run per cell with every layer measured (--layers=all). Mini-batch cells use the
learning rate of the full-batch cell times B / P (the linear scaling rule: the same expected
move per epoch, so t* falls at a comparable epoch, which the per-epoch measurement resolves)
and the same number of epochs.

Per cell (`cell_row`): the fraction of seeds whose headline curves invert at the first
measured layer and at every layer, t* and phi, |S(t*)|, the stability z of S(t*) across seeds,
its overlap z with the MLP's S(t*) of the same data, task and batch (the same T: do the
stragglers belong to the data or to the architecture family?), and for ten classes the spread
of phi_k over classes, the correlation of phi_k with the per-class test error, and the overlap
of the ten-class S(t*) with the parity S(t*) of the same model.

With `prune` (`Pruning`), each complete cell is then pruned (pruning.run_prune, SWEEP/prune/
CELL/, resumable): its first base seeds retrained from scratch without S(t*) and without a
random set of the same size (and the other removal kinds of Fig. 2), and its row gets whether
the headline R still inverts and the clean and noisy test errors of both (Fig. 2c's tradeoff).
"""

import dataclasses
import itertools
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from manifold_dynamics import plotting
from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.analysis import stragglers as stragglers_lib
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from manifold_dynamics.studies import pruning, sweeps

MODELS = ('mlp', 'cnn', 'resnet')
TASKS = ('parity', 'classes')
BATCHES = (0, 128)  # 0: full batch
DATASETS = ('mnist', 'fashion_mnist', 'cifar10', 'cifar10_rgb')
RGB = '_rgb'
PRUNED = 'prune'  # SWEEP/prune/CELL: the pruning study of each cell


@dataclasses.dataclass(frozen=True)
class Pruning:
  """The pruning stage of the grid (pruning.run_prune on every complete cell)."""

  eps: Sequence[float] = ()  # S(t(eps)) removals beside S(t*), its random control, t*/2, 3t*
  max_base_seeds: int = 10
  sigmas: Sequence[float] = pruning.SIGMAS


@dataclasses.dataclass(frozen=True)
class Cell:
  model: str
  dataset: str  # a DATASETS entry
  task: str
  batch: int  # 0 = full batch

  @property
  def name(self) -> str:
    return f'{self.model}-{self.dataset}-{self.task}-{"GD" if not self.batch else f"B{self.batch}"}'

  def like(self, **changes) -> 'Cell':
    return dataclasses.replace(self, **changes)


def cells(models, tasks, batches, datasets) -> List[Cell]:
  """The grid, RGB only for the conv models (an MLP flattens it like a grey image, which
  the grey cells already cover)."""
  for name, allowed, given in (
      ('models', MODELS, models),
      ('tasks', TASKS, tasks),
      ('datasets', DATASETS, datasets),
  ):
    unknown = [v for v in given if v not in allowed]
    if unknown or not given:
      raise UserError(
          f'unknown {unknown[0]!r} in --{name}; choose among {", ".join(allowed)}.'
          if unknown
          else f'--{name} is empty.'
      )
  if any(b < 0 for b in batches) or not batches:
    raise UserError(f'--batches takes sizes >= 1 (0 = full batch), got {list(batches)}.')
  return [
      Cell(m, d, t, b)
      for m, d, t, b in itertools.product(models, datasets, tasks, batches)
      if not (m == 'mlp' and d.endswith(RGB))
  ]


def point(cell: Cell, data_cfg: DataConfig, train_cfg: TrainConfig) -> sweeps.Point:
  rgb = cell.dataset.endswith(RGB)
  data = dataclasses.replace(
      data_cfg,
      dataset=cell.dataset[: -len(RGB)] if rgb else cell.dataset,
      task=cell.task,
      grey='rgb' if rgb else data_cfg.grey,
  )
  batch = cell.batch or None
  lr = train_cfg.lr * (cell.batch / data.train_size if batch else 1.0)
  train = dataclasses.replace(train_cfg, model=cell.model, batch_size=batch, lr=lr, layers='all')
  labels = dataclasses.asdict(cell)
  return sweeps.Point(cell.name, data, train, labels)


class Located(NamedTuple):
  """Where a complete cell's files are: its run directory and its sweep's."""

  cell: Cell
  run: str  # SWEEP/points/CELL
  sweep: str

  @property
  def pruned(self) -> str:
    return os.path.join(self.sweep, PRUNED, self.cell.name, 'summary.json')


def located(sweep: sweeps.SweepDir, points: Sequence[sweeps.Point]) -> Dict[str, Located]:
  """The complete cells among `points`, by name."""
  return {
      p.name: Located(Cell(**p.labels), sweep.point_dir(p), sweep.path)
      for p in points
      if sweep.is_complete(p)
  }


def _stragglers(where: Located) -> List[np.ndarray]:
  return io.load_stragglers(f'{where.run}/stragglers.npz')


def cell_row(where: Located, cells: Dict[str, Located]) -> dict:
  """The numbers of one cell (see the module docstring), compared with the other complete
  `cells` (of any sweep); None where a compared cell is not (yet) complete."""
  summary = io.read_json(f'{where.run}/summary.json')
  cell = where.cell
  sets = _stragglers(where)
  P = summary['train_size']
  head = list(summary['inversion_fraction'])
  row = {
      'cell': cell.name,
      **dataclasses.asdict(cell),
      'seeds': summary['seeds'],
      'epochs_trained': summary.get('epochs_trained', summary['epochs']),
      'inversion_fraction': summary['inversion_fraction'],
      'layer_names': summary.get('layer_names'),
      'inversion_fraction_by_layer': {
          k: v['inversion_fraction'] for k, v in summary.get('layers', {}).items()
      },
      't_star_mean': {k: v['mean'] for k, v in summary['t_star_stats'].items()},
      'phi_mean': summary['phi_mean'],
      'phi_std': summary['phi_std'],
      'n_stragglers_mean': summary['n_stragglers_mean'],
      'stability': (
          stragglers_lib.within_run_overlap(sets, P).summary() if len(sets) >= 2 else None
      ),
      'headline': head,
      'final_test_error': summary['final']['test_error']['mean'],
  }

  def overlap_with(other: Cell, mine: List[np.ndarray] = sets) -> Optional[dict]:
    if other.name not in cells or other == cell:
      return None
    theirs = _stragglers(cells[other.name])
    n = min(len(mine), len(theirs))
    return stragglers_lib.overlap(mine[:n], theirs[:n], P).summary()

  row['prune'] = prune_row(io.read_json(where.pruned)) if os.path.isfile(where.pruned) else None
  grey = cell.dataset[: -len(RGB)] if cell.dataset.endswith(RGB) else cell.dataset
  mlp = cell.like(model='mlp', dataset=grey)
  row['overlap_with_mlp'] = overlap_with(mlp)
  layers = summary.get('layer_names') or []
  if len(layers) > 1:
    rule = io.read_json(f'{where.run}/config.json')['train'].get('t_star_rule', 'global')
    history = io.load_run(where.run).history.at_layer(len(layers) - 1)
    row['last_layer'] = layer_row(history, layers[-1], rule, P)
    for curve in row['last_layer']['curves'].values():
      curve['overlap_with_mlp'] = overlap_with(mlp, curve.pop('sets'))
  if cell.task == 'classes':
    per = summary.get('per_class', {})
    row['phi_class'] = per.get('R_class', {}).get('phi_mean')
    row['phi_class_spread'] = per.get('phi_class_spread')
    row['test_error_class'] = per.get('test_error_class')
    row['phi_class_vs_test_error_pearson'] = per.get('phi_class_vs_test_error_pearson')
    row['straggler_fraction_class'] = per.get('straggler_fraction')
    row['straggler_fraction_vs_test_error_pearson'] = per.get(
        'straggler_fraction_vs_test_error_pearson'
    )
    row['overlap_with_parity'] = overlap_with(cell.like(task='parity'))
  return row


def layer_row(history, layer: str, rule: str, num_examples: int) -> dict:
  """The inversion at one measured layer (`history.at_layer`), read by `rule`, curve by curve
  (a conv net's dense layer can invert on D and not on R): the fraction of seeds that invert,
  the mean t*, phi = the training error at that curve's t*, and S(t*) at it (as 'sets') with
  its size and its stability across seeds."""
  inv = inversion_lib.analyse(history, rule=rule)
  out = {'layer': layer, 'curves': {}}
  for k, c in inv.curves.items():
    sets = inversion_lib.stragglers(history, c.t_star)
    phi = history.train_error[np.arange(history.num_seeds), c.t_star]
    out['curves'][k] = {
        'inversion_fraction': float(np.mean(c.inverted)),
        't_star_mean': float(np.mean(c.t_star)),
        'phi_mean': float(np.mean(phi)),
        'phi_std': float(np.std(phi)),
        'n_stragglers_mean': float(np.mean([len(x) for x in sets])),
        'stability': (
            stragglers_lib.within_run_overlap(sets, num_examples).summary()
            if len(sets) >= 2
            else None
        ),
        'sets': sets,
    }
  return out


def prune_row(summary: dict) -> dict:
  """What the pruning of a cell says: per removal (S(t*), a random set of its size), the
  fraction of retrained runs whose headline R still inverts, and the mean test error, clean
  and at every noise level."""
  out = {'observable': summary['observable'], 'base_seeds': summary['base_seeds']}
  for kind in ('stragglers', 'random'):
    k = summary[kind]
    out[kind] = {
        'removed_mean': float(np.mean(k['removed'])),
        'inversion_fraction': float(np.mean(k['inversion'])),
        'test_error_mean': float(np.mean(k['test_error'])),
        'noisy_test_error_mean': {s: float(np.mean(v)) for s, v in k['noisy_test_error'].items()},
    }
  noisiest = max(summary['sigmas'])
  key = f'{noisiest:g}'
  s, r = out['stragglers'], out['random']
  out['tradeoff'] = {
      'sigma': noisiest,
      'clean_cost': s['test_error_mean'] - r['test_error_mean'],
      'noisy_gain': r['noisy_test_error_mean'][key] - s['noisy_test_error_mean'][key],
  }
  out['tradeoff']['holds'] = bool(
      out['tradeoff']['clean_cost'] > 0 and out['tradeoff']['noisy_gain'] > 0
  )
  return out


def run_pruning(
    sweep: sweeps.SweepDir,
    mine: Sequence[sweeps.Point],
    stage: Pruning,
    log: Callable[[str], None] = print,
):
  """Prunes every complete cell of `mine` not yet pruned (SWEEP/prune/CELL, resumable); a
  failing cell is recorded in sweep.failures and the others go on."""
  for p in mine:
    target = f'{sweep.file(PRUNED)}/{p.name}'
    if not sweep.is_complete(p) or os.path.isfile(f'{target}/summary.json'):
      continue
    log(f'--- pruning {p.name}')
    with sweep.failing_alone(f'pruning {p.name}', log):
      pruning.run_prune(
          p.data,
          p.train,
          target,
          from_run=sweep.point_dir(p),
          eps_grid=tuple(stage.eps),
          sigmas=tuple(stage.sigmas),
          max_base_seeds=stage.max_base_seeds,
          log=log,
      )


def _z(overlap: Optional[dict]) -> str:
  if not overlap or overlap.get('z_null') is None:
    return '-'
  return f'{overlap["z_null"]:.0f}'


def table(rows: Sequence[dict]) -> str:
  """The grid as a Markdown table, one line per cell."""
  lines = [
      '| cell | inverts (first layer) | inverts (every layer) | t* | phi | size of S(t*) '
      '| z seeds | z vs MLP | z vs parity |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  deeper = any(r.get('last_layer') for r in rows)
  if deeper:
    lines[0] += ' last layer, per curve: inverts, t*, phi, size of S(t*), z seeds, z vs MLP |'
    lines[1] += ' --- |'
  pruned = any(r.get('prune') for r in rows)
  if pruned:
    lines[0] += ' inverts w/o S(t*), w/o random |'
    lines[0] += ' test error w/o S(t*), w/o random: clean; noisiest |'
    lines[1] += ' --- | --- |'
  for r in rows:
    first = ', '.join(f'{k} {v:.0%}' for k, v in r['inversion_fraction'].items())
    layers = '; '.join(
        f'{k}: ' + '/'.join(f'{v:.0%}' for v in vs)
        for k, vs in r['inversion_fraction_by_layer'].items()
    )
    t = ', '.join(f'{v:.0f}' for v in r['t_star_mean'].values())
    stability = r['stability'] or {}
    lines.append(
        f'| {r["cell"]} | {first} | {layers or "-"} | {t} | {r["phi_mean"]:.3f} ± '
        f'{r["phi_std"]:.3f} | {r["n_stragglers_mean"]:.0f} | {_z(stability)} | '
        f'{_z(r.get("overlap_with_mlp"))} | {_z(r.get("overlap_with_parity"))} |'
        + (_last_layer_cell(r.get('last_layer')) if deeper else '')
        + (_prune_cells(r.get('prune')) if pruned else '')
    )
  return '\n'.join(lines)


def matrix(rows: Sequence[dict], grid: Sequence[Cell]) -> str:
  """Every cell of `grid` as one Markdown table: a line per dataset, task and batch, a column
  per model; a measured cell (in `rows`, from any number of sweeps) gives phi, the percentage
  of seeds whose headline curves invert at the first measured layer (R+/R-/D, or R_mean/D_mean
  for ten classes), and at the last one when there are several, and, when pruned, 'tradeoff'
  if Fig. 2c's holds; the others 'not run'."""
  by_name = {r['cell']: r for r in rows}
  models = list(dict.fromkeys(c.model for c in grid))
  lines = [
      '| dataset | task | batch | ' + ' | '.join(models) + ' |',
      '| --- | --- | --- | ' + ' | '.join('---' for _ in models) + ' |',
  ]
  for dataset, task, batch in dict.fromkeys((c.dataset, c.task, c.batch) for c in grid):
    entries = []
    for model in models:
      cell = Cell(model, dataset, task, batch)
      r = by_name.get(cell.name)
      if cell not in grid:
        entries.append('-')
      elif r is None:
        entries.append('not run')
      else:
        inverts = '/'.join(f'{100 * v:.0f}' for v in r['inversion_fraction'].values()) + '%'
        layers, by_layer = r.get('layer_names') or [], r.get('inversion_fraction_by_layer')
        if len(layers) > 1 and by_layer:  # and at the last measured layer (a conv net's dense)
          last = '/'.join(f'{100 * v[-1]:.0f}' for v in by_layer.values())
          inverts += f'; {layers[-1]} {last}%'
        pruned = r.get('prune')
        tradeoff = (
            '' if not pruned else (', tradeoff' if pruned['tradeoff']['holds'] else ', no tradeoff')
        )
        entries.append(f'{r["phi_mean"]:.3f} ({inverts}{tradeoff})')
    lines.append(
        f'| {dataset} | {task} | {"GD" if not batch else f"B = {batch}"} | '
        + ' | '.join(entries)
        + ' |'
    )
  return '\n'.join(lines)


def collected_rows(sweep_paths: Sequence[str]) -> List[dict]:
  """The row of every complete cell of the given settings sweeps, each compared with the
  cells of all of them (a later sweep's cell of the same name wins)."""
  cells: Dict[str, Located] = {}
  for path in sweep_paths:
    config_path = os.path.join(path, 'config.json')
    if not os.path.isfile(config_path):
      raise UserError(f'{path} has no config.json: is it a settings sweep? Check the path.')
    config = io.read_json(config_path)
    if config.get('experiment') != 'settings':
      raise UserError(f'{path} is a {config.get("experiment")!r} sweep, not a settings one.')
    for p in config['points']:
      run = os.path.join(os.path.abspath(path), sweeps.POINTS, p['name'])
      if os.path.isfile(os.path.join(run, 'summary.json')):
        cells[p['name']] = Located(Cell(**p['labels']), run, os.path.abspath(path))
  return [cell_row(where, cells) for where in cells.values()]


def _last_layer_cell(last: Optional[dict]) -> str:
  if not last:
    return ' - |'
  curves = '; '.join(
      f'{k} {c["inversion_fraction"]:.0%}, t* {c["t_star_mean"]:.0f}, phi {c["phi_mean"]:.3f}, '
      f'{c["n_stragglers_mean"]:.0f}, z {_z(c["stability"])}, z vs MLP '
      f'{_z(c.get("overlap_with_mlp"))}'
      for k, c in last['curves'].items()
  )
  return f' {last["layer"]}: {curves} |'


def _prune_cells(prune: Optional[dict]) -> str:
  if not prune:
    return ' - | - |'
  s, r, t = prune['stragglers'], prune['random'], prune['tradeoff']
  key = f'{t["sigma"]:g}'
  return (
      f' {s["inversion_fraction"]:.0%}, {r["inversion_fraction"]:.0%} | '
      f'{s["test_error_mean"]:.4f}, {r["test_error_mean"]:.4f}; '
      f'{s["noisy_test_error_mean"][key]:.3f}, {r["noisy_test_error_mean"][key]:.3f} '
      f'(σ {key}) |'
  )


def draw_observables(
    sweep: sweeps.SweepDir, points: Sequence[sweeps.Point], name: str, title: str, seeds: int
):
  """observables_vs_train_error_NAME: the first measured layer of every cell in `points`
  (the analogue of Fig. 3a), and _NAME_LAYER the same at the last measured layer (the dense
  layer of a conv net) when it is another one."""
  histories = [sweeps.load_point(sweep, p).history for p in points]
  labels = [p.name for p in points]
  layers = io.read_json(f'{sweep.point_dir(points[0])}/summary.json').get('layer_names') or []
  views = [(f'observables_vs_train_error_{name}', 'first measured layer', histories)]
  if len(layers) > 1:
    last = [h.at_layer(len(layers) - 1) for h in histories]
    views.append((f'observables_vs_train_error_{name}_{layers[-1]}', layers[-1], last))
  for filename, where, curves in views:
    plotting.save(
        plotting.observables_vs_train_error(
            curves, labels, title=f'{title}: {where}, {seeds} seeds per cell'
        ),
        sweep.path,
        filename,
    )


def run_settings(
    grid: Sequence[Cell],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    num_tasks: int = 1,
    task_index: int = 0,
    collect_only: bool = False,
    log: Callable[[str], None] = print,
    prune: Optional[Pruning] = None,
) -> dict:
  """Trains every cell of `grid` (one run directory each), prunes them with `prune`, and
  tabulates them."""
  points = [point(c, data_cfg, train_cfg) for c in grid]
  sweep = sweeps.SweepDir(workdir, 'settings', points, create=not collect_only)
  done = sweeps.run(sweep, num_tasks, task_index, collect_only, log)
  if prune is not None and not collect_only:
    run_pruning(sweep, sweeps.assign(points, num_tasks, task_index), prune, log)
  cells = located(sweep, points)
  rows = [cell_row(cells[p.name], cells) for p in done]
  summary = {
      'experiment': 'settings',
      'points_total': len(points),
      'points_complete': len(done),
      'sgd_lr_rule': 'lr(B) = lr * B / P (linear scaling), epochs as the full-batch cell',
      'rows': rows,
  }
  io.write_json(sweep.file('summary.json'), summary)
  with open(sweep.file('table.md'), 'w') as f:
    f.write(table(rows) + '\n')
  for model in dict.fromkeys(Cell(**p.labels).model for p in done):
    for task in TASKS:
      mine = [p for p in done if p.labels['model'] == model and p.labels['task'] == task]
      if mine:
        draw_observables(sweep, mine, f'{model}_{task}', f'{model}, {task}', train_cfg.seeds)
  log(table(rows))
  log(f'results in {sweep.path}')
  sweep.raise_failures()
  return summary
