"""Library side of the experiments: data -> training -> analysis -> run directory -> figures.

Entry points in experiments/ only parse flags, build the configs and call one function here.
"""

import dataclasses
import os
import platform
import sys
import time
from typing import Callable

import jax
import numpy as np

import manifold_dynamics
from manifold_dynamics import difficulty, io, plotting, pruning
from manifold_dynamics import inversion as inversion_lib
from manifold_dynamics import stragglers as stragglers_lib
from manifold_dynamics.config import DataConfig, TrainConfig, model_label, run_label
from manifold_dynamics.data import get_info, load_task
from manifold_dynamics.errors import UserError
from manifold_dynamics.train import (
    DivergenceError,
    TrainData,
    fit,
    logits_function,
    measured_layers,
)


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


def default_workdir(
    experiment: str, data_cfg: DataConfig, train_cfg: TrainConfig, with_optimizer: bool = True
) -> str:
  """runs/<experiment>-<dataset>-P..-L..xH..-<activation>[-<optimizer>-lr..]-S..-T.."""
  subset = f'-k{data_cfg.subset_index}' if data_cfg.subset_index else ''
  subset += f'-noise{data_cfg.label_noise:g}' if data_cfg.label_noise else ''
  subset += (
      '' if data_cfg.task == 'parity' else '-' + data_cfg.task.replace(':', '').replace(',', '')
  )
  optimizer = f'-{train_cfg.optimizer}-lr{train_cfg.lr:g}' if with_optimizer else ''
  optimizer += '' if train_cfg.batch_size is None else f'-B{train_cfg.batch_size}'
  model = f'L{train_cfg.depth}xH{train_cfg.width}'
  if train_cfg.model != 'mlp':
    model = model_label(train_cfg).rsplit(' ', 1)[0].replace(' ', '').replace('/', 'x')
  dataset = data_cfg.dataset
  if ':' in dataset:  # tfds:NAME or npz:PATH
    kind, _, where = dataset.partition(':')
    dataset = kind + '_' + os.path.splitext(os.path.basename(where.rstrip('/')))[0]
  return (
      f'runs/{experiment}-{dataset}-P{data_cfg.train_size}{subset}-'
      f'{model}-{train_cfg.activation}{optimizer}-'
      f'S{train_cfg.seeds}-T{train_cfg.epochs}'
  )


def write_config(
    run: io.RunDir, experiment: str, data_cfg: DataConfig, train_cfg: TrainConfig, task, **extra
):
  """config.json, the first file of every run directory."""
  run.begin(
      {
          'experiment': experiment,
          'data': dataclasses.asdict(data_cfg),
          'train': dataclasses.asdict(train_cfg),
          'task': task_info(task),
          **extra,
          'environment': environment(),
      }
  )


def task_info(task) -> dict:
  """What config.json says of a task: its inputs, test set and classes."""
  info = {
      'num_inputs': int(task.x_train.shape[1]),
      'num_test': int(len(task.y_test)),
  }
  if task.num_classes == 2:
    info['fraction_positive'] = float(np.mean(task.y_train > 0))
  else:
    info['num_classes'] = int(task.num_classes)
  if task.input_shape is not None and len(task.input_shape) > 1:
    info['input_shape'] = [int(d) for d in task.input_shape]
  return info


def train_and_save(
    run: io.RunDir,
    name: str,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    task,
    log: Callable[[str], None],
    weights=None,
    data=None,
    model=None,
):
  """Trains, streaming the history into the run directory as `name` (a directory, see
  io.py) and checkpointing as it goes, so that running the same command again resumes an
  interrupted training (or skips a finished one); a diverged run keeps its partial history.

  Returns the History and the final RunState of every run.
  """
  log(
      f'training {train_cfg.seeds} seeds x {train_cfg.epochs} epochs on '
      f'{run_label(data_cfg, train_cfg, model)} on {jax.default_backend()}'
  )
  data = TrainData.from_task(task) if data is None else data
  try:
    return fit(
        train_cfg,
        data,
        log=log,
        weights=weights,
        return_state=True,
        store=run.history_store(name, task.train_indices),
        model=model,
    )
  except DivergenceError as e:
    raise UserError(f'{e} Partial history kept in {run.file(name)}.') from None


def run_inversion(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    figures: bool = True,
    task=None,
    model=None,
) -> dict:
  """Trains `train_cfg.seeds` nets on the task of `data_cfg` and writes the run directory
  (without its figures when `figures` is False: a sweep draws its own). A `task` given (e.g.
  `Task.from_arrays`) is used instead of loading data_cfg's; a Flax `model` under the
  contract of `contract.py` instead of train_cfg.model (config.json names its class).

  Returns the summary dict (also written to summary.json; None on the processes other than 0
  of a multi-host run). On divergence the partial history is kept in the staging directory
  and a `UserError` names it; an interrupted run resumes when called again (io.RunDir).
  """
  run = io.RunDir(workdir, overwrite)  # refuses an existing run before any work
  task = load_task(data_cfg, log=log) if task is None else task
  extra = {} if model is None else {'model': type(model).__name__}
  write_config(run, 'inversion', data_cfg, train_cfg, task, **extra)
  history, states = train_and_save(run, 'history', data_cfg, train_cfg, task, log, model=model)
  if not run.writer:  # another process of a multi-host run: process 0 writes the results
    run.commit()
    return None

  inv = inversion_lib.analyse(history)
  sets = inversion_lib.stragglers(history, inv.t_star)
  io.save_stragglers(run.file('stragglers.npz'), sets, task.train_indices, inv.t_star)
  if states.scores is not None:
    save_recorded_scores(run, states, train_cfg, task)
  summary = inversion_lib.summary(history, inv)
  summary['dataset'] = data_cfg.dataset
  layer_names = measured_layers(train_cfg, TrainData.from_task(task), model)
  summary['layer_names'] = layer_names
  per_layer = inversion_lib.layer_summary(history)
  if per_layer:
    summary['layers'] = per_layer
  io.write_json(run.file('summary.json'), summary)

  title = run_label(data_cfg, train_cfg, model)
  if figures:
    _inversion_figures(run, history, inv, summary, title)
  if per_layer:
    plotting.save(
        plotting.layers_vs_epoch(history, title, layer_names), run.staging, 'layers_vs_epoch'
    )
  path = run.commit()
  log(format_summary(summary))
  log(f'results in {path}')
  return summary


def save_recorded_scores(run: io.RunDir, states, train_cfg: TrainConfig, task) -> dict:
  """scores.npz: the per-example scores accumulated during training (cfg.scores), each
  (seeds, P); returns them."""
  columns = difficulty.finalize(states.scores, train_cfg.score_epochs)
  io.save_scores(run.file('scores.npz'), columns, task.train_indices, train_cfg.score_epochs)
  return columns


def _inversion_figures(run: io.RunDir, history, inv, summary: dict, title: str):
  plotting.save(plotting.inversion_vs_epoch(history, inv, title), run.staging, 'inversion_vs_epoch')
  plotting.save(
      plotting.observables_vs_train_error([history], title=title, phi=summary['phi_mean']),
      run.staging,
      'observables_vs_train_error',
  )
  plotting.save(plotting.R_plus_per_run(history, inv, title), run.staging, 'R_plus_per_run')


def format_summary(summary: dict) -> str:
  """A few human-readable lines of a summary.json."""
  lines = [
      f'phi = {summary["phi_mean"]:.4f} +- {summary["phi_std"]:.4f} over '
      f'{summary["seeds"]} seeds; |S(t*)| = {summary["n_stragglers_mean"]:.1f} +- '
      f'{summary["n_stragglers_std"]:.1f} of {summary["train_size"]}'
  ]
  for name, stats in summary['t_star_stats'].items():
    lines.append(
        f't*({name}) in [{stats["min"]:.0f}, {stats["max"]:.0f}], mean '
        f'{stats["mean"]:.1f}; inversion in '
        f'{summary["inversion_fraction"][name]:.0%} of seeds'
    )
  return '\n'.join(lines)


def _num(value) -> str:
  return 'undefined (no spread)' if value is None else f'{value:.1f}'


def _pct(value) -> str:
  return 'n/a (no stragglers)' if value is None else f'{value:.1%}'


def _architectures_of(spec) -> list:
  return [tuple(int(v) for v in a) for a in spec]


def run_stragglers(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    from_run: str = None,
    architectures=((2, 20),),
    eps_grid=(),
    observable: str = 'R_plus',
    null_samples: int = 200,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Identifies the stragglers S(t*) and measures their stability (Fig. 2d, identity test).

  The base run is `from_run` (a finished inversion run directory, whose data and training
  settings then replace data_cfg / train_cfg) or is trained here. Every architecture (depth,
  width) in `architectures` other than the base one is trained with the same data, optimiser,
  epochs and seeds. Stability within a run pairs disjoint seeds (0, 1), (2, 3), ...; across two
  architectures it pairs seed i of one with seed i+1 of the other.
  """
  run = io.RunDir(workdir, overwrite)
  source = None
  if from_run:
    source = io.load_run(from_run)
    data_cfg = DataConfig(**source.config['data'])
    train_cfg = TrainConfig(**source.config['train'])
  if train_cfg.seeds < 2:
    raise UserError('the stability of stragglers needs --seeds >= 2.')
  base = (train_cfg.depth, train_cfg.width)
  architectures = list(dict.fromkeys([base] + _architectures_of(architectures)))
  task = load_task(data_cfg, log=log)
  write_config(
      run,
      'stragglers',
      data_cfg,
      train_cfg,
      task,
      from_run=from_run,
      architectures=[list(a) for a in architectures],
      eps_grid=list(eps_grid),
      observable=observable,
  )
  histories = {}
  for depth, width in architectures:
    if (depth, width) == base and source is not None:
      histories[base] = source.history
      continue
    cfg = dataclasses.replace(train_cfg, depth=depth, width=width)
    histories[(depth, width)] = train_and_save(
        run, f'history_L{depth}xH{width}', data_cfg, cfg, task, log
    )[0]
  P = histories[base].num_examples
  sets = {arch: stragglers_lib.at_t_star(h, observable) for arch, h in histories.items()}
  t_star = inversion_lib.analyse(histories[base]).curves[observable].t_star
  io.save_stragglers(run.file('stragglers.npz'), sets[base], task.train_indices, t_star)

  within = stragglers_lib.within_run_overlap(sets[base], P)
  pairs = stragglers_lib.seed_pairs(len(sets[base]))
  sizes = np.array([[len(sets[base][i]), len(sets[base][j])] for i, j in pairs])
  sampled = stragglers_lib.sample_null_overlaps(
      sizes[:, 0], sizes[:, 1], P, null_samples, np.random.default_rng(train_cfg.seed)
  )
  summary = {
      'dataset': data_cfg.dataset,
      'seeds': train_cfg.seeds,
      'epochs': train_cfg.epochs,
      'train_size': P,
      'observable': observable,
      'n_stragglers': [len(s) for s in sets[base]],
      'n_stragglers_mean': float(np.mean([len(s) for s in sets[base]])),
      'n_stragglers_std': float(np.std([len(s) for s in sets[base]])),
      **within.summary(),
      'null_overlap_mean_sampled': float(sampled.mean()),
      'null_overlap_std_sampled': float(sampled.std()),
  }
  eps_rows = []
  for eps in eps_grid:
    eps_sets = stragglers_lib.at_train_error(histories[base], eps)
    ov = stragglers_lib.within_run_overlap(eps_sets, P)
    eps_rows.append(
        dict(eps=float(eps), n_mean=float(np.mean([len(s) for s in eps_sets])), **ov.summary())
    )
  summary['z_vs_eps'] = eps_rows
  arch_rows = []
  for i, a in enumerate(architectures):
    for b in architectures[i:]:
      if a == b:
        ov = stragglers_lib.within_run_overlap(sets[a], P)
      else:
        shifted = [sets[b][(k + 1) % len(sets[b])] for k in range(len(sets[a]))]
        ov = stragglers_lib.overlap(sets[a], shifted, P)
      arch_rows.append(dict(run_0=f'{a[0]}x{a[1]}', run_1=f'{b[0]}x{b[1]}', **ov.summary()))
  summary['architectures'] = arch_rows
  io.write_json(run.file('summary.json'), summary)

  title = f'{data_cfg.dataset}, P={P}, {base[0]}x{base[1]} {train_cfg.activation}'
  seed0 = sets[base][0][:40]
  image_shape = get_info(data_cfg.dataset).image_shape[:2]
  plotting.save(
      plotting.straggler_grid(
          task.x_train[seed0].reshape((-1,) + image_shape),
          task.y_train[seed0],
          task.train_indices[seed0],
          f'stragglers S(t*) of seed 0 ({len(sets[base][0])} in all; '
          f'first {len(seed0)}), {title}',
      ),
      run.staging,
      'stragglers_seed0',
  )
  if eps_rows:
    plotting.save(
        plotting.z_vs_train_error(
            np.array([r['eps'] for r in eps_rows]),
            *(
                np.array([np.nan if r[k] is None else r[k] for r in eps_rows])
                for k in ('z', 'z_null', 'shared_fraction')
            ),
            title,
        ),
        run.staging,
        'z_vs_eps',
    )
  plotting.save(
      plotting.overlap_by_architecture(
          [f'{r["run_0"]} / {r["run_1"]}' for r in arch_rows],
          np.array([r['overlap_mean'] for r in arch_rows]),
          np.array([r['null_overlap_mean'] for r in arch_rows]),
          np.array([np.nan if r['z'] is None else r['z'] for r in arch_rows]),
          title,
      ),
      run.staging,
      'overlap_by_architecture',
  )
  path = run.commit()
  log(
      f'|S(t*)| = {summary["n_stragglers_mean"]:.1f} +- {summary["n_stragglers_std"]:.1f}; '
      f'two seeds share {_pct(summary["shared_fraction"])} of their stragglers; overlap '
      f'{summary["overlap_mean"]:.1f} vs null {summary["null_overlap_mean"]:.1f} '
      f'(sampled {summary["null_overlap_mean_sampled"]:.1f}); z = {_num(summary["z"])} '
      f'(null spread: {_num(summary["z_null"])})'
  )
  for r in arch_rows:
    log(
        f'  {r["run_0"]:>5s} / {r["run_1"]:<5s}: overlap {r["overlap_mean"]:.1f} vs null '
        f'{r["null_overlap_mean"]:.1f}, shared {_pct(r["shared_fraction"])}, '
        f'z = {_num(r["z"])}'
    )
  log(f'results in {path}')
  return summary


def retrain_removals(
    run: io.RunDir,
    name: str,
    plan: pruning.Removals,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    task,
    sigmas,
    log: Callable[[str], None],
    data=None,
):
  """Retrains every row of `plan` from a fresh initialisation (root seed train_cfg.seed + 1,
  all rows in one program, history `name`), tests each net on the noise grid `sigmas`, and
  writes removals.npz. Returns the History and the (runs, len(sigmas)) noisy test errors."""
  retrain_cfg = dataclasses.replace(
      train_cfg, seeds=len(plan.kind), seed=train_cfg.seed + 1, scores=(), score_epochs=()
  )
  base_seeds = len(set(plan.base_seed.tolist()))
  log(
      f'retraining {len(plan.kind)} runs: {len(plan.kinds())} removal kinds x {base_seeds} '
      f'base seeds'
  )
  data = TrainData.from_task(task) if data is None else data
  weights = plan.weights(len(task.y_train))
  history, states = train_and_save(
      run, name, data_cfg, retrain_cfg, task, log, weights=weights, data=data
  )
  noisy = pruning.noisy_test_errors(
      logits_function(retrain_cfg, data),
      states,
      data,
      sigmas,
      jax.random.PRNGKey(train_cfg.seed + 2),
  )
  offsets = np.concatenate([[0], np.cumsum([len(r) for r in plan.removed])])
  io.write_npz(
      run.file('removals.npz'),
      kind=np.array(plan.kind),
      base_seed=plan.base_seed,
      removed=np.concatenate(plan.removed).astype(np.int64),
      offsets=offsets,
      noisy_test_error=noisy,
      sigmas=np.asarray(sigmas, np.float32),
  )
  return history, noisy


def run_prune(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    from_run: str = None,
    eps_grid=(0.1, 0.05, 0.02, 0.01, 0.005),
    t_before: float = 0.5,
    t_after: float = 3.0,
    sigmas=pruning.SIGMAS,
    max_base_seeds: int = 10,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Fig. 2a-c: retrain from scratch without the stragglers (and controls), then test.

  The base run is `from_run` or is trained here with `train_cfg`; the removal sets of its first
  `max_base_seeds` seeds (pruning.plan_removals) are each retrained once, from a fresh
  initialisation, with the same settings.
  """
  run = io.RunDir(workdir, overwrite)
  source = io.load_run(from_run) if from_run else None
  if source is not None:
    data_cfg = DataConfig(**source.config['data'])
    train_cfg = TrainConfig(**source.config['train'])
  task = load_task(data_cfg, log=log)
  write_config(
      run,
      'prune',
      data_cfg,
      train_cfg,
      task,
      from_run=from_run,
      eps_grid=list(eps_grid),
      t_before=t_before,
      t_after=t_after,
      sigmas=list(sigmas),
      max_base_seeds=max_base_seeds,
  )
  base = (
      source.history
      if source
      else train_and_save(run, 'history_base', data_cfg, train_cfg, task, log)[0]
  )
  keep = min(base.num_seeds, max_base_seeds)
  base = base.select(slice(0, keep))
  plan = pruning.plan_removals(base, eps_grid, t_before, t_after, seed=train_cfg.seed)
  P = base.num_examples
  history, noisy = retrain_removals(run, 'history', plan, data_cfg, train_cfg, task, sigmas, log)

  curves = inversion_lib.curve_inversion(history.R_plus, 'R_plus')
  summary = {
      'dataset': data_cfg.dataset,
      'base_seeds': keep,
      'epochs': train_cfg.epochs,
      'train_size': P,
      'sigmas': list(sigmas),
      'kinds': {},
  }
  for kind in plan.kinds():
    rows = plan.rows(kind)
    summary['kinds'][kind] = {
        'base_seed': plan.base_seed[rows].tolist(),
        'removed': [len(plan.removed[r]) for r in rows],
        'inversion': curves.inverted[rows].tolist(),
        'rise': curves.rise[rows].tolist(),
        'test_error': history.test_error[rows, -1].tolist(),
        'train_error': history.train_error[rows, -1].tolist(),
        'noisy_test_error': {f'{s:g}': noisy[rows, i].tolist() for i, s in enumerate(sigmas)},
        'final': {k: getattr(history, k)[rows, -1].tolist() for k in inversion_lib.OBSERVABLES},
    }
  for kind in ('stragglers', 'random', 'before_t_star', 'after_t_star'):
    summary[kind] = summary['kinds'][kind]  # the headline kinds, at the top level too
  summary['base_test_error'] = base.test_error[:, -1].tolist()
  io.write_json(run.file('summary.json'), summary)

  title = f'{data_cfg.dataset}, P={P}, {train_cfg.depth}x{train_cfg.width} {train_cfg.activation}'
  heads = ('stragglers', 'random', 'before_t_star', 'after_t_star')
  plotting.save(
      plotting.pruned_R_plus_vs_epoch(
          {k: history.select(plan.rows(k)) for k in heads},
          {k: curves.inverted[plan.rows(k)] for k in heads},
          title,
      ),
      run.staging,
      'prune_R_plus_vs_epoch',
  )
  if eps_grid:
    eps = np.asarray(eps_grid, float)
    at = lambda prefix, values: np.stack(
        [values[plan.rows(prefix + pruning.eps_kind(e))] for e in eps]
    )
    finals = {k: getattr(history, k)[:, -1] for k in inversion_lib.OBSERVABLES}
    plotting.save(
        plotting.pruned_vs_eps(
            eps,
            {k: at('', v) for k, v in finals.items()},
            {k: at('random_', v) for k, v in finals.items()},
            {
                'R_plus': r'$R_+$ at convergence',
                'R_minus': r'$R_-$ at convergence',
                'D': '$D$ at convergence',
            },
            title,
        ),
        run.staging,
        'prune_observables_vs_eps',
    )
    errors = {f'sigma={s:g}': noisy[:, i] for i, s in enumerate(sigmas)}
    plotting.save(
        plotting.pruned_vs_eps(
            eps,
            {k: at('', v) for k, v in errors.items()},
            {k: at('random_', v) for k, v in errors.items()},
            {k: f'test error, noise {k.replace("sigma", "σ")}' for k in errors},
            title,
        ),
        run.staging,
        'prune_test_error_vs_eps',
    )
  path = run.commit()
  for kind in heads:
    k = summary[kind]
    log(
        f'{kind:>14s}: removed {np.mean(k["removed"]):7.1f}, inversion in '
        f'{int(np.sum(k["inversion"]))}/{len(k["inversion"])} runs, test error '
        f'{np.mean(k["test_error"]):.4f} +- {np.std(k["test_error"]):.4f}'
    )
  log(
      f'{"no removal":>14s}: test error {np.mean(summary["base_test_error"]):.4f} +- '
      f'{np.std(summary["base_test_error"]):.4f}'
  )
  log(f'results in {path}')
  return summary
