r"""Does the inversion survive outside the paper's setting? The settings grid (issue 19).

    python experiments/settings.py                                  # the whole grid (a GPU's job)
    python experiments/settings.py --models=mlp --seeds=10          # the MLP cells (CPU: ~1 h)
    python experiments/settings.py --quick                          # P = 256, 2 seeds, 40 epochs
    python experiments/settings.py --models=mlp --datasets=mnist --prune   # and Fig. 2's pruning
    python experiments/settings.py --models=cnn --datasets=mnist --tasks=parity --batches=0 \
        --epochs=200 --seed_batch=2             # one conv cell on a 24 GB CPU: ~80 min
    python experiments/settings.py --tabulate=runs/settings-a,runs/settings-b   # one table

A conv cell's ten seeds at P = 8192 need about 41 GB at once: --seed_batch=2 trains them two
by two (memory only; a sweep accepts the change between its runs).

Cells: --models (mlp 2x20, cnn, resnet) x --tasks (parity, classes) x --batches (0 = full-batch
GD, 128) x --datasets (mnist, fashion_mnist, cifar10 grey, cifar10_rgb for the conv models).
Each cell is one inversion run with every layer measured, P = 8192, lr 0.2 for full batch and
0.2 x B / P for mini-batches (the linear scaling rule: the same expected move per epoch), the
stop rule on (--stop_after_inversion; --t_star_rule=first reads the t* it makes exact).

Resumable and splittable like every sweep (--num_tasks/--task_index, SLURM array variables,
--collect_only). Writes the sweep directory: points/<cell>/ (ordinary run directories),
summary.json (per cell: the fraction of seeds that invert at the first and at every layer, t*,
phi, |S(t*)|, the stability z of S(t*) across seeds, its overlap z with the MLP's S(t*) of the
same data, and for ten classes the spread of phi_k, its correlation with the per-class test
error and the overlap with the parity stragglers), table.md, and per model and task
observables_vs_train_error_<model>_<task>.{png,pdf} (the analogue of Fig. 3a).

--prune then prunes every complete cell (prune/<cell>/, resumable: experiments/prune.py on the
cell): the first --prune_base_seeds seeds retrained from scratch without S(t*), without a
random set of its size, without S(t) at t*/2 and 3t* (and S(t(eps)) for --prune_eps), each
tested clean and under noise; the table gets whether R still inverts and both test errors.
S(t*) is read at a conv cell's clearest layer, or where --prune_at=LAYER:CURVE says; a conv cell
in which no curve inverts at any layer while its loss falls is not pruned (it says so).
"""

from typing import Optional, Tuple

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.analysis import grid as grid_lib
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import style
from manifold_dynamics.studies import settings

cli.define_run_flags(epochs=1000, seeds=10)
cli.define_sweep_flags(bootstrap=False)
define = cli.define_once
define(flags.DEFINE_list, 'models', list(grid_lib.MODELS), 'Models of the grid.')
define(flags.DEFINE_list, 'tasks', list(grid_lib.TASKS), 'Tasks of the grid.')
define(flags.DEFINE_list, 'batches', ['0', '128'], 'Batch sizes (0 = full batch).')
define(flags.DEFINE_list, 'datasets', list(grid_lib.DATASETS), 'Datasets of the grid.')
define(
    flags.DEFINE_list,
    'tabulate',
    [],
    'Train nothing: print the measured cells of these settings sweeps, compared across them '
    '(the overlap with the MLP of another sweep), then every cell of the grid as one table '
    '(cells measured in none: "not run"); redraw the layer heat maps into the first sweep.',
)
define(flags.DEFINE_bool, 'prune', False, 'Prune every complete cell (Fig. 2 on the grid).')
define(flags.DEFINE_list, 'prune_eps', [], 'Training errors eps: also remove S(t(eps)).')
define(flags.DEFINE_integer, 'prune_base_seeds', 10, 'Base seeds of each cell to prune.')
define(flags.DEFINE_list, 'prune_cells', [], 'Cells to prune, by name (default: every one).')
define(
    flags.DEFINE_string,
    'prune_at',
    None,
    'LAYER:CURVE (e.g. stage1_block0:D, conv_1:pooled:D_mean) at which to read t* and S(t*) in '
    "every pruned cell; default: a conv cell's clearest layer, an MLP cell's first layer.",
)
define(
    flags.DEFINE_bool,
    'prune_around',
    True,
    'Also remove S(t) at t*/2 and 3t* (Fig. 2a); --noprune_around: S(t*) and its random '
    'control only.',
)
define(
    flags.DEFINE_list,
    'model_lrs',
    [],
    'Full-batch lr of a model, model:lr (e.g. cnn:0.05,resnet:0.05; experiments/learning_rate.py '
    'chooses them); the others take --lr.',
)
define(
    flags.DEFINE_bool,
    'pooled_too',
    False,
    'Measure every conv layer averaged over space too (--layers=all,all:pooled), not only '
    'flattened.',
)
FLAGS = flags.FLAGS

DEFAULTS = dict(cli.SWEEP_DEFAULTS, t_star_rule='first')
QUICK = dict(seeds=2, epochs=40, train_size=256, chunk_epochs=20)


@cli.entry
def main():
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK, DEFAULTS, strict_models=False)
  grid = grid_lib.cells(
      FLAGS.models,
      FLAGS.tasks,
      cli.int_list(FLAGS, 'batches', ['0', '32'] if FLAGS.quick else None),
      FLAGS.datasets,
  )
  if FLAGS.tabulate:
    rows = grid_lib.collected_rows(FLAGS.tabulate)
    by_layer = grid_lib.layer_table(rows)
    print(grid_lib.table(rows) + '\n\n' + grid_lib.matrix(rows, grid))
    if by_layer.count('\n') > 1:  # cells read at every layer (--pooled_too, after_transient)
      print('\n' + by_layer)
      settings.draw_layer_maps(rows, lambda fig, name: style.save(fig, FLAGS.tabulate[0], name))
    return
  workdir = cli.sweep_workdir(FLAGS, 'settings', f'P{data_cfg.train_size}', f'S{train_cfg.seeds}')
  prune = None
  if FLAGS.prune:
    if FLAGS.prune_base_seeds < 1:
      raise UserError(f'--prune_base_seeds must be positive, got {FLAGS.prune_base_seeds}.')
    eps = cli.float_list(FLAGS, 'prune_eps')
    if any(not 0 < e < 1 for e in eps):
      raise UserError(f'--prune_eps takes training errors in (0, 1), got {eps}.')
    known = {c.name for c in grid}
    unknown = [c for c in FLAGS.prune_cells if c not in known]
    if unknown:
      raise UserError(f'--prune_cells names {unknown[0]!r}, not a cell of this grid.')
    prune = settings.Pruning(
        eps=eps,
        max_base_seeds=FLAGS.prune_base_seeds,
        around=FLAGS.prune_around,
        cells=FLAGS.prune_cells or None,
        at=prune_at(FLAGS.prune_at),
    )
  settings.run_settings(
      grid,
      data_cfg,
      train_cfg,
      workdir,
      cli.sweep_workers(FLAGS),
      prune=prune,
      model_settings={
          m: cli.model_settings(FLAGS, m, strict=False) for m in dict.fromkeys(FLAGS.models)
      },
      model_lrs=model_lrs(FLAGS.model_lrs),
      pooled_too=FLAGS.pooled_too,
  )


def model_lrs(values) -> dict:
  """{model: lr} from --model_lrs, or a one-line error."""
  out = {}
  for value in values:
    model, _, lr = value.partition(':')
    try:
      out[model] = float(lr)
    except ValueError:
      raise UserError(f'--model_lrs takes model:lr pairs (cnn:0.05), got {value!r}.') from None
    if model not in grid_lib.MODELS or not out[model] > 0:
      raise UserError(
          f'--model_lrs: {value!r} needs a model of {", ".join(grid_lib.MODELS)} and a positive lr.'
      )
  return out


def prune_at(value: Optional[str]) -> Optional[Tuple[str, str]]:
  """(layer, curve) from --prune_at=LAYER:CURVE (the layer may hold ':pooled'), or None."""
  if value is None:
    return None
  layer, _, curve = value.rpartition(':')
  if not layer or not curve:
    raise UserError(f'--prune_at takes LAYER:CURVE (stage1_block0:D), got {value!r}.')
  return layer, curve


if __name__ == '__main__':
  app.run(main)
