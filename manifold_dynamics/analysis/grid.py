"""The settings grid of the inversion (SPEC §8), as data: its cells, and the numbers of a
complete cell read from its run directory (NumPy; studies/settings.py trains and prunes them).

A cell is a model, a dataset, a task and a batch size. `cell_row` gives, per cell: the
fraction of seeds whose headline curves invert at the first measured layer and at every
layer, t* and phi, |S(t*)|, the stability z of S(t*) across seeds, its overlap z with the
MLP's S(t*) of the same data, task and batch (the same T: do the stragglers belong to the
data or to the architecture family?), and for ten classes the spread of phi_k over classes,
the correlation of phi_k with the per-class test error, and the overlap of the ten-class
S(t*) with the parity S(t*) of the same model; with several measured layers the inversion at
the last one, curve by curve; and once pruned, whether the headline R still inverts without
S(t*) and the Fig. 2c tradeoff. `table` and `matrix` write the rows as Markdown.
"""

import dataclasses
import itertools
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.analysis import learning_rate as lr_lib
from manifold_dynamics.analysis import stragglers as stragglers_lib
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from manifold_dynamics.records.history import POOLED

MODELS = ('mlp', 'cnn', 'resnet')
TASKS = ('parity', 'classes')
BATCHES = (0, 128)  # 0: full batch
DATASETS = ('mnist', 'fashion_mnist', 'cifar10', 'cifar10_rgb')
RGB = '_rgb'


PRUNED = 'prune'  # SWEEP/prune/CELL: the pruning study of each cell
POINTS = 'points'  # SWEEP/points/CELL: the run directory of each cell (sweeps.POINTS)


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


class Located(NamedTuple):
  """Where a complete cell's files are: its run directory and its sweep's."""

  cell: Cell
  run: str  # SWEEP/points/CELL
  sweep: str

  @property
  def pruned(self) -> str:
    return os.path.join(self.sweep, PRUNED, self.cell.name, 'summary.json')


def located(sweep, points) -> Dict[str, Located]:
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
  train = io.read_json(f'{where.run}/config.json')['train']
  row['lr'] = train['lr']
  row['t_star_rule'] = train.get('t_star_rule', 'global')
  row['transient'] = {
      k: {'fraction': v['fraction'], 'epoch_mean': v['epoch_mean'], 'height_mean': v['height_mean']}
      for k, v in summary.get('transient', {}).items()
  }
  full = io.load_run(where.run).history
  if not cell.batch:
    # SPEC §8's lr rule on the cell's own run: where the loss rises before t*, the curves
    # wiggle with it and a "t*" there may read the oscillation, not the inversion.
    row['lr_check'] = lr_lib.check(full)
  if len(layers) > 1:
    rule = row['t_star_rule']
    last = last_flattened(layers)
    row['last_layer'] = layer_row(full.at_layer(last), layers[last], rule, P)
    for curve in row['last_layer']['curves'].values():
      curve['overlap_with_mlp'] = overlap_with(mlp, curve.pop('sets'))
    if any(name.endswith(POOLED) for name in layers) or rule == 'after_transient':
      row['by_layer'] = layer_briefs(full, layers, rule, full_batch=not cell.batch)
      # Every layer read by the cell's rule, whichever rule its summary.json was written with.
      row['inversion_fraction_by_layer'] = {
          k: [brief['curves'][k]['inversion_fraction'] for brief in row['by_layer'].values()]
          for k in row['inversion_fraction_by_layer']
      }
      best = clearest(row['by_layer'])
      row['clearest'] = layer_row(full.at_layer(layers.index(best)), best, rule, P)
      for curve in row['clearest']['curves'].values():
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


def last_flattened(layer_names: Sequence[str]) -> int:
  """Index of the last measured layer that is not a pooled view (a conv net's dense layer)."""
  return max(k for k, name in enumerate(layer_names) if not name.endswith(POOLED))


def layer_brief(history, rule: str, until: Optional[np.ndarray] = None) -> dict:
  """The inversion at one measured layer, read by `rule`, curve by curve: the fraction of
  seeds that invert, the mean t*, phi at that curve's t*, the transient (SPEC §8: fraction of
  seeds, mean epoch of its peak and height); the fraction that invert at a t* up to which the
  loss fell ('readable_fraction': t* <= `until` (seeds,), from
  `learning_rate.readable_until`; without it, every inversion counts); and the fraction of
  seeds in which every curve so inverts ('every')."""
  inv = inversion_lib.analyse(history, rule=rule)
  seeds = np.arange(history.num_seeds)
  limit = np.full(history.num_seeds, history.num_epochs) if until is None else np.asarray(until)
  out = {'curves': {}}
  readable = {}
  for k, c in inv.curves.items():
    t = inversion_lib.transient_summary(getattr(history, k), history.train_error, k, per_seed=False)
    before = c.t_star <= limit
    readable[k] = c.inverted & before
    out['curves'][k] = {
        'inversion_fraction': float(np.mean(c.inverted)),
        'readable_fraction': float(np.mean(readable[k])),
        't_star_mean': float(np.mean(c.t_star)),
        'phi_mean': float(np.mean(history.train_error[seeds, c.t_star])),
        # the move back, where t* comes before the loss's rise (`clearest`'s last tie-break)
        'rise_mean': float(np.mean(np.where(before, c.rise, 0.0))),
        'transient': {key: t[key] for key in ('fraction', 'epoch_mean', 'height_mean')},
    }
  out['every'] = float(np.mean(np.all(list(readable.values()), axis=0)))
  return out


def layer_briefs(history, layer_names: Sequence[str], rule: str, full_batch: bool) -> dict:
  """{layer: `layer_brief`} at every measured layer, a full-batch run read up to
  `learning_rate.readable_until`."""
  until = lr_lib.readable_until(history) if full_batch else None
  return {name: layer_brief(history.at_layer(k), rule, until) for k, name in enumerate(layer_names)}


def clearest(by_layer: Dict[str, dict]) -> str:
  """The layer at which the inversion is clearest: the most seeds in which every curve
  inverts, then the most (seed, curve) pairs that invert, then the largest mean move back;
  the earlier layer on a tie. Inversions count only at a t* the loss fell up to (a full-batch
  run's `learning_rate.readable_until`): an oscillating run's late "inversions" are its loss's."""

  def key(item):
    k, (name, brief) = item
    fractions = [c['readable_fraction'] for c in brief['curves'].values()]
    rises = [c['rise_mean'] for c in brief['curves'].values()]
    return (brief['every'], float(np.mean(fractions)), float(np.mean(rises)), -k)

  return max(enumerate(by_layer.items()), key=key)[1][0]


def prune_target(
    history, layer_names: Sequence[str], rule: str, full_batch: bool
) -> Optional[Tuple[str, str]]:
  """(layer, curve) at which to prune a cell: the clearest layer (`clearest`, reading a
  full-batch run up to `learning_rate.readable_until`), and there the curve that so inverts
  in the most seeds (the first headline curve on a tie). None where no curve so inverts in
  any seed at any layer: there S(t*) marks no inversion, and pruning it answers nothing."""
  by_layer = layer_briefs(history, layer_names, rule, full_batch)
  layer = clearest(by_layer)
  curves = by_layer[layer]['curves']
  best = max(curves, key=lambda k: (curves[k]['readable_fraction'], -list(curves).index(k)))
  return (layer, best) if curves[best]['readable_fraction'] > 0 else None


def prune_row(summary: dict) -> dict:
  """What the pruning of a cell says: per removal (S(t*), a random set of its size), the
  fraction of retrained runs whose headline R still inverts (and of those, with full batches,
  the fraction that do so before their loss first rose), and the mean test error, clean and
  at every noise level."""
  out = {
      'observable': summary['observable'],
      'layer': summary.get('layer'),
      'base_seeds': summary['base_seeds'],
  }
  for kind in ('stragglers', 'random'):
    k = summary[kind]
    before = k.get('inversion_before_loss_rise')  # absent from summaries before it was read
    out[kind] = {
        'removed_mean': float(np.mean(k['removed'])),
        'inversion_fraction': float(np.mean(k['inversion'])),
        'before_loss_rise_fraction': None if before is None else float(np.mean(before)),
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


def _z(overlap: Optional[dict]) -> str:
  if not overlap or overlap.get('z_null') is None:
    return '-'
  text = f'{overlap["z_null"]:.0f}'
  return '0' if text == '-0' else text  # a z of -0.3 is 0, not "-0"


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
        if r.get('clearest') and not inverts_somewhere(r):  # read at every layer: none inverts
          inverts += '; no layer inverts'
        elif r.get('clearest'):  # read at every layer: and at the clearest one
          at = _percentages(r['by_layer'][r['clearest']['layer']])
          inverts += f'; clearest {r["clearest"]["layer"]} {at}%'
        elif len(layers) > 1 and by_layer:  # and at the last measured layer (a conv net's dense)
          k = last_flattened(layers)
          last = '/'.join(f'{100 * v[k]:.0f}' for v in by_layer.values())
          inverts += f'; {layers[k]} {last}%'
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


def inverts_somewhere(row: dict) -> bool:
  """Whether any curve of a cell read at every layer (`by_layer`) inverts in any seed at any
  layer; where none does, its 'clearest' layer is only the one that comes nearest."""
  return any(
      c['inversion_fraction'] > 0 for b in row['by_layer'].values() for c in b['curves'].values()
  )


def _percentages(brief: dict) -> str:
  """'R+/R-/D' (or 'R_mean/D_mean'): the percentage of seeds in which each curve of one
  layer's brief inverts."""
  return '/'.join(f'{100 * c["inversion_fraction"]:.0f}' for c in brief['curves'].values())


def layer_table(rows: Sequence[dict]) -> str:
  """The cells read at every measured layer (conv cells measured both ways, `by_layer`), as
  Markdown: per cell its lr and headline transient, and per layer the percentage of seeds in
  which each curve inverts (R+/R-/D or R_mean/D_mean, after the transient), the clearest layer
  marked, with phi there, the stability z of its S(t*) and its overlap z with the MLP's."""
  lines = [
      '| cell | lr | transient at the first layer (R+/R-/D, seeds) | inverts, layer by layer '
      '(flattened; pooled) | clearest layer: phi, size of S(t*), z seeds, z vs MLP |',
      '| --- | --- | --- | --- | --- |',
  ]
  for r in rows:
    by = r.get('by_layer')
    if not by:
      continue
    flat = [f'{n} {_percentages(b)}' for n, b in by.items() if not n.endswith(POOLED)]
    pooled = [f'{n[: -len(POOLED)]} {_percentages(b)}' for n, b in by.items() if n.endswith(POOLED)]
    layers = ', '.join(flat) + ('; ' + ', '.join(pooled) if pooled else '')
    transient = '/'.join(f'{100 * t["fraction"]:.0f}' for t in r['transient'].values()) + '%'
    best = r['clearest']
    readable = by[best['layer']]['curves']
    curve = max(
        best['curves'],
        key=lambda k: (
            readable[k].get('readable_fraction', 0),
            best['curves'][k]['inversion_fraction'],
        ),
    )
    c = best['curves'][curve]
    clearest = (
        ('' if inverts_somewhere(r) else 'none inverts; nearest ')
        + f'{best["layer"]} ({curve} {100 * c["inversion_fraction"]:.0f}%): {c["phi_mean"]:.3f}, '
        f'{c["n_stragglers_mean"]:.0f}, z {_z(c["stability"])}, z vs MLP '
        f'{_z(c.get("overlap_with_mlp"))}'
    )
    lines.append(f'| {r["cell"]} | {lr_cell(r)} | {transient} | {layers} | {clearest} |')
  return '\n'.join(lines)


def lr_cell(row: dict) -> str:
  """A cell's lr, and where its loss rose before t* (SPEC §8's rule failing on the cell)."""
  check = row.get('lr_check')
  if not check or check['passes']:
    return f'{row["lr"]:g}'
  first = min(t for t in check['first_rise'] if t >= 0)
  return (
      f'{row["lr"]:g} (loss rises before t* in {check["seeds_failing"]}/'
      f'{len(check["first_rise"])} seeds, from epoch {first})'
  )


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
      run = os.path.join(os.path.abspath(path), POINTS, p['name'])
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
  fractions = [(k['inversion_fraction'], k.get('before_loss_rise_fraction')) for k in (s, r)]
  late = any(b is not None and b != f for f, b in fractions)  # some only once the loss rose
  return (
      f' {s["inversion_fraction"]:.0%}, {r["inversion_fraction"]:.0%}'
      + (f' ({fractions[0][1]:.0%}, {fractions[1][1]:.0%} before the loss rose)' if late else '')
      + ' | '
      f'{s["test_error_mean"]:.4f}, {r["test_error_mean"]:.4f}; '
      f'{s["noisy_test_error_mean"][key]:.3f}, {r["noisy_test_error_mean"][key]:.3f} '
      f'(σ {key}) |'
  )
