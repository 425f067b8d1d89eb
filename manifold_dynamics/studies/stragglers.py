"""The stragglers study (Fig. 2d, identity test): S(t*) and its stability across seeds,
training errors and architectures (SPEC §6)."""

from typing import Callable

import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.analysis import stragglers as stragglers_lib
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.engine import models
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import stragglers as plots
from manifold_dynamics.records import io
from manifold_dynamics.studies.skeleton import Study


def _num(value) -> str:
  return 'undefined (no spread)' if value is None else f'{value:.1f}'


def _pct(value) -> str:
  return 'n/a (no stragglers)' if value is None else f'{value:.1%}'


def _architectures_of(spec) -> list:
  return [tuple(int(v) for v in a) for a in spec]


def _base_shape(train_cfg: TrainConfig):
  """(depth, width) of the base run's MLP, or None for another model."""
  if train_cfg.model != 'mlp':
    return None
  settings = models.settings(train_cfg)
  return (settings.depth, settings.width)


def _name(arch) -> str:
  return f'{arch[0]}x{arch[1]}' if isinstance(arch, tuple) else arch


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
  settings then replace data_cfg / train_cfg) or is trained here. Every MLP architecture
  (depth, width) in `architectures` other than the base one is trained with the same data,
  optimiser, epochs and seeds (beside a base run of another model too). Stability within a
  run pairs disjoint seeds (0, 1), (2, 3), ...; across two architectures it pairs seed i of
  one with seed i+1 of the other.
  """

  def prepare(data_cfg: DataConfig, train_cfg: TrainConfig, source) -> dict:
    del data_cfg, source
    if train_cfg.seeds < 2:
      raise UserError('the stability of stragglers needs --seeds >= 2.')
    base = _base_shape(train_cfg)
    shapes = ([base] if base else []) + _architectures_of(architectures)
    return {'architectures': [list(a) for a in dict.fromkeys(shapes)]}

  study = Study.open(
      'stragglers',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      from_run=from_run,
      prepare=prepare,
      eps_grid=list(eps_grid),
      observable=observable,
  )
  data_cfg, train_cfg, task, source = study.data_cfg, study.train_cfg, study.task, study.source
  base = _base_shape(train_cfg) or models.label(train_cfg)
  architectures = list(dict.fromkeys([base] + _architectures_of(architectures)))
  histories = {}
  for arch in architectures:
    if arch == base and source is not None:
      histories[base] = source.history
    elif arch == base and not isinstance(base, tuple):
      histories[base] = study.train('history', train_cfg)[0]
    else:
      depth, width = arch
      cfg = train_cfg.with_model('mlp', depth=depth, width=width)
      histories[arch] = study.train(f'history_L{depth}xH{width}', cfg)[0]
  P = histories[base].num_examples
  sets = {arch: stragglers_lib.at_t_star(h, observable) for arch, h in histories.items()}
  t_star = inversion_lib.analyse(histories[base]).curves[observable].t_star
  io.save_stragglers(study.file('stragglers.npz'), sets[base], task.train_indices, t_star)

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
      arch_rows.append(dict(run_0=_name(a), run_1=_name(b), **ov.summary()))
  summary['architectures'] = arch_rows
  study.write_summary(summary)

  title = study.title
  seed0 = sets[base][0][:40]
  if study.image_shape:
    study.draw(
        plots.straggler_grid(
            task.x_train[seed0].reshape((-1,) + study.image_shape),
            task.y_train[seed0],
            task.train_indices[seed0],
            f'stragglers S(t*) of seed 0 ({len(sets[base][0])} in all; '
            f'first {len(seed0)}), {title}',
        ),
        'stragglers_seed0',
    )
  if eps_rows:
    study.draw(
        plots.z_vs_train_error(
            np.array([r['eps'] for r in eps_rows]),
            *(
                np.array([np.nan if r[k] is None else r[k] for r in eps_rows])
                for k in ('z', 'z_null', 'shared_fraction')
            ),
            title,
        ),
        'z_vs_eps',
    )
  study.draw(
      plots.overlap_by_architecture(
          [f'{r["run_0"]} / {r["run_1"]}' for r in arch_rows],
          np.array([r['overlap_mean'] for r in arch_rows]),
          np.array([r['null_overlap_mean'] for r in arch_rows]),
          np.array([np.nan if r['z'] is None else r['z'] for r in arch_rows]),
          title,
      ),
      'overlap_by_architecture',
  )
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
  study.commit()
  return summary
