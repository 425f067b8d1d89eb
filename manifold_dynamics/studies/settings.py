"""Does the inversion survive outside the paper's setting? (issues 19 and 27, SPEC §8)

A sweep (sweeps.py: resumable, splittable over workers) over the cells of `analysis/grid.py`:

  model    mlp (2 x 20, the reference), cnn (two 3x3 conv blocks, then dense), resnet (narrow,
           no normalisation);
  task     parity, classes (all ten, K-way softmax);
  batch    full (GD) and 128 (mini-batch SGD);
  dataset  mnist, fashion_mnist, cifar10 (grey), and cifar10_rgb (three channels) for the conv
           models;

one inversion run per cell with every layer measured (--layers=all). Mini-batch cells use the
learning rate of the full-batch cell times B / P (the linear scaling rule: the same expected
move per epoch, so t* falls at a comparable epoch, which the per-epoch measurement resolves)
and the same number of epochs. Each cell's row (`grid.cell_row`) is written to summary.json
and table.md.

With `prune` (`Pruning`), each complete cell is then pruned (pruning.run_prune, SWEEP/prune/
CELL/, resumable): its first base seeds retrained from scratch without S(t*) and without a
random set of the same size (and the other removal kinds of Fig. 2), and its row gets whether
the headline R still inverts and the clean and noisy test errors of both (Fig. 2c's tradeoff).
"""

import dataclasses
import os
from typing import Callable, Mapping, Optional, Sequence, Tuple

from manifold_dynamics.analysis import grid as grid_lib
from manifold_dynamics.analysis.grid import PRUNED, RGB, TASKS, Cell
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import curves
from manifold_dynamics.plotting import settings as plots
from manifold_dynamics.records import io
from manifold_dynamics.records.history import POOLED
from manifold_dynamics.studies import pruning, sweeps


@dataclasses.dataclass(frozen=True)
class Pruning:
  """The pruning stage of the grid (pruning.run_prune on every complete cell)."""

  eps: Sequence[float] = ()  # S(t(eps)) removals beside S(t*), its random control, t*/2, 3t*
  max_base_seeds: int = 10
  sigmas: Sequence[float] = pruning.SIGMAS
  around: bool = True  # also S(t) at t*/2 and 3t* (Fig. 2a's); False: S(t*) and random only
  cells: Optional[Sequence[str]] = None  # the cells to prune, by name; None: every one
  # (layer, curve) at which to read t* and S(t*) in every pruned cell; None: a conv cell's
  # clearest layer (grid.prune_target; not pruned where nothing inverts), an MLP cell's first
  # layer and headline curve.
  at: Optional[Tuple[str, str]] = None


# A conv model's layers with pooled views too: every layer flattened, every feature map
# averaged over space (SPEC §8).
BOTH_WAYS = 'all,all' + POOLED


def point(
    cell: Cell,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    settings: Optional[Mapping] = None,
    lr: Optional[float] = None,
    pooled_too: bool = False,
) -> sweeps.Point:
  """The run of one cell: its data and task, its model (with `settings`, else the model's
  defaults), every layer measured (conv layers also averaged over space with `pooled_too`),
  its full-batch `lr` (default: train_cfg's) and the mini-batch lr by the linear scaling
  rule."""
  rgb = cell.dataset.endswith(RGB)
  data = dataclasses.replace(
      data_cfg,
      dataset=cell.dataset[: -len(RGB)] if rgb else cell.dataset,
      task=cell.task,
      grey='rgb' if rgb else data_cfg.grey,
  )
  batch = cell.batch or None
  lr = (train_cfg.lr if lr is None else lr) * (cell.batch / data.train_size if batch else 1.0)
  train = train_cfg.with_model(cell.model, **(settings or {}))
  layers = BOTH_WAYS if pooled_too and cell.model != 'mlp' else 'all'
  train = dataclasses.replace(train, batch_size=batch, lr=lr, layers=layers)
  labels = dataclasses.asdict(cell)
  return sweeps.Point(cell.name, data, train, labels)


def run_pruning(
    sweep: sweeps.Sweep,
    stage: Pruning,
    log: Callable[[str], None] = print,
):
  """Prunes every complete cell of this worker not yet pruned (SWEEP/prune/CELL, resumable); a
  failing cell is recorded in the sweep's failures and the others go on. A conv cell in which
  nothing inverts (grid.prune_target) is left unpruned, with a line that says so."""
  directory = sweep.directory
  for p in sweep.mine():
    target = f'{sweep.file(PRUNED)}/{p.name}'
    if not directory.is_complete(p) or os.path.isfile(f'{target}/summary.json'):
      continue
    if stage.cells is not None and p.name not in stage.cells:
      continue
    log(f'--- pruning {p.name}')
    with directory.failing_alone(f'pruning {p.name}', log):
      layer = observable = None
      if stage.at is not None:
        layer, observable = checked_target(directory.point_dir(p), p.name, stage.at)
      elif p.train.layers == BOTH_WAYS or p.train.t_star_rule == 'after_transient':
        run = io.load_run(directory.point_dir(p))  # a conv net: where its inversion is clearest
        clearest = grid_lib.prune_target(
            run.history, run.summary['layer_names'], p.train.t_star_rule, not p.train.batch_size
        )
        if clearest is None:
          log(
              f'{p.name}: not pruned, as no curve inverts at any layer while its loss falls '
              '(--prune_at=LAYER:CURVE prunes S(t*) there all the same).'
          )
          continue
        layer, observable = clearest
      if layer is not None:
        log(f'{p.name}: S(t*) read at {layer}, on {observable}')
      pruning.run_prune(
          p.data,
          p.train,
          target,
          from_run=directory.point_dir(p),
          eps_grid=tuple(stage.eps),
          sigmas=tuple(stage.sigmas),
          max_base_seeds=stage.max_base_seeds,
          log=log,
          t_before=0.5 if stage.around else None,
          t_after=3.0 if stage.around else None,
          layer=layer,
          observable=observable,
      )


def checked_target(run_dir: str, cell: str, at: Tuple[str, str]) -> Tuple[str, str]:
  """`at` = (layer, curve) if the cell's run measures that layer and curve, else a UserError
  that names what it measures (before anything of the pruning is written)."""
  layer, curve = at
  summary = io.read_json(f'{run_dir}/summary.json')
  names, curves = summary.get('layer_names') or [], list(summary.get('layers') or {})
  if layer not in names or curve not in curves:
    raise UserError(
        f'--prune_at={layer}:{curve}: cell {cell} measures the layers {", ".join(names)} and '
        f'the curves {", ".join(curves)}; name one of each.'
    )
  return layer, curve


def draw_layer_maps(rows: Sequence[dict], draw: Callable[[object, str], object]):
  """Per model, the heat map of where the inversion lives (`layers_<model>`), from the cells
  read at every layer; `draw(figure, name)` saves it."""
  for model in dict.fromkeys(r['model'] for r in rows if r.get('by_layer')):
    mine = [r for r in rows if r['model'] == model and r.get('by_layer')]
    draw(plots.layers_by_cell(mine, f'{model}: where the inversion lives'), f'layers_{model}')


def draw_observables(
    sweep: sweeps.Sweep, points: Sequence[sweeps.Point], name: str, title: str, seeds: int
):
  """observables_vs_train_error_NAME: the first measured layer of every cell in `points`
  (the analogue of Fig. 3a), and _NAME_LAYER the same at the last measured layer (the dense
  layer of a conv net) when it is another one."""
  histories = [sweep.load(p).history for p in points]
  labels = [p.name for p in points]
  layers = sweep.summaries(points[:1])[points[0].name].get('layer_names') or []
  views = [(f'observables_vs_train_error_{name}', 'first measured layer', histories)]
  if len(layers) > 1:
    last = [h.at_layer(len(layers) - 1) for h in histories]
    views.append((f'observables_vs_train_error_{name}_{layers[-1]}', layers[-1], last))
  for filename, where, layer_histories in views:
    sweep.draw(
        curves.observables_vs_train_error(
            layer_histories, labels, title=f'{title}: {where}, {seeds} seeds per cell'
        ),
        filename,
    )


def run_settings(
    grid: Sequence[Cell],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
    prune: Optional[Pruning] = None,
    model_settings: Optional[Mapping[str, Mapping]] = None,
    model_lrs: Optional[Mapping[str, float]] = None,
    pooled_too: bool = False,
) -> dict:
  """Trains every cell of `grid` (one run directory each; `model_settings`: each model's own
  settings, by model name, else its defaults; `model_lrs`: each model's full-batch lr, else
  train_cfg's; `pooled_too`: conv layers measured averaged over space too), prunes them with
  `prune`, and tabulates them."""
  points = [
      point(
          c,
          data_cfg,
          train_cfg,
          (model_settings or {}).get(c.model),
          (model_lrs or {}).get(c.model),
          pooled_too,
      )
      for c in grid
  ]
  sweep = sweeps.Sweep.run('settings', points, workdir, workers, log)
  if prune is not None and not workers.collect_only:
    run_pruning(sweep, prune, log)
  cells = grid_lib.located(sweep.directory, points)
  rows = [grid_lib.cell_row(cells[p.name], cells) for p in sweep.done]
  summary = sweep.write_summary(
      {
          'sgd_lr_rule': 'lr(B) = lr * B / P (linear scaling), epochs as the full-batch cell',
          'rows': rows,
      }
  )
  text = grid_lib.table(rows)
  if any(r.get('by_layer') for r in rows):
    text += '\n\n' + grid_lib.layer_table(rows)
    draw_layer_maps(rows, sweep.draw)
  io.write_text(sweep.file('table.md'), text + '\n')
  for model in dict.fromkeys(Cell(**p.labels).model for p in sweep.done):
    for task in TASKS:
      mine = [p for p in sweep.done if p.labels['model'] == model and p.labels['task'] == task]
      if mine:
        draw_observables(sweep, mine, f'{model}_{task}', f'{model}, {task}', train_cfg.seeds)
  log(grid_lib.table(rows))
  return sweep.close(summary)
