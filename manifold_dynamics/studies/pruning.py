"""Pruning and retraining (Fig. 2a-c): train again from scratch on T \\ S.

For every base seed s of a finished run the removal sets are
  stragglers     S(t*)                     the examples misclassified at t*(R+);
  before_t_star  S(t) at t = t_before * t*  (earlier: a larger set);
  after_t_star   S(t) at t = t_after * t*   (later: a smaller set);
  random         a random subset of T of the size of S(t*) (the control);
  eps=E          S(t(E)) for each E of the eps grid, and random_eps=E, its random control.
Every removal is a 0/1 weight vector over T, so all retrainings (removal kinds x base seeds,
each with a fresh initialisation) train together in one vmapped program; the standardisation
is recomputed on each pruned set inside the engine. After training, each net is tested on the
clean test set and on noisy ones (Gaussian noise of std sigma on the standardised pixels).
"""

import dataclasses
from typing import Callable, Optional

import jax
import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.analysis import learning_rate as lr_lib
from manifold_dynamics.analysis.removals import Removals, around_t_star, eps_kind
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.engine.evaluate import noisy_test_errors
from manifold_dynamics.engine.state import TrainData
from manifold_dynamics.engine.train import logits_function, measured_layers
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import pruning as plots
from manifold_dynamics.plotting import style
from manifold_dynamics.records import io
from manifold_dynamics.studies.skeleton import Study

SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.2, 1.5)  # SPEC §1 noise levels


def retrain_removals(study: Study, name: str, plan: Removals, sigmas, data=None):
  """Retrains every row of `plan` from a fresh initialisation (root seed train_cfg.seed + 1,
  all rows in one program, history `name`), tests each net on the noise grid `sigmas`, and
  writes removals.npz. Returns the History and the (runs, len(sigmas)) noisy test errors."""
  train_cfg, task, log = study.train_cfg, study.task, study.log
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
  history, states = study.train(name, retrain_cfg, weights=weights, data=data)
  noisy = noisy_test_errors(
      logits_function(retrain_cfg, data),
      states,
      data,
      sigmas,
      jax.random.PRNGKey(train_cfg.seed + 2),
  )
  offsets = np.concatenate([[0], np.cumsum([len(r) for r in plan.removed])])
  io.write_npz(
      study.file('removals.npz'),
      kind=np.array(plan.kind),
      base_seed=plan.base_seed,
      removed=np.concatenate(plan.removed).astype(np.int64),
      offsets=offsets,
      noisy_test_error=noisy,
      sigmas=np.asarray(sigmas, np.float32),
  )
  return history, noisy


def _layer_index(study: Study, layer: Optional[str]) -> Optional[int]:
  """The index of measured layer `layer` among the run's layers, None for the first."""
  if layer is None:
    return None
  names = measured_layers(study.train_cfg, TrainData.from_task(study.task))
  if layer not in names:
    raise UserError(f'--layer={layer} is not measured by this run; it measures {", ".join(names)}.')
  return names.index(layer)


def run_prune(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    from_run: str = None,
    eps_grid=(0.1, 0.05, 0.02, 0.01, 0.005),
    t_before: Optional[float] = 0.5,
    t_after: Optional[float] = 3.0,
    sigmas=SIGMAS,
    max_base_seeds: int = 10,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    layer: Optional[str] = None,
    observable: Optional[str] = None,
) -> dict:
  """Fig. 2a-c: retrain from scratch without the stragglers (and controls), then test.

  The base run is `from_run` or is trained here with `train_cfg`; the removal sets of its first
  `max_base_seeds` seeds (removals.around_t_star) are each retrained once, from a fresh
  initialisation, with the same settings (t_before or t_after None: that kind is left
  out). t* and S(t*) are read at the measured `layer` (a
  name of its layer_names; default: the first) on `observable` (default: the first headline
  curve), and so is the retrained runs' inversion.
  """
  study = Study.open(
      'prune',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      from_run=from_run,
      eps_grid=list(eps_grid),
      t_before=t_before,
      t_after=t_after,
      sigmas=list(sigmas),
      max_base_seeds=max_base_seeds,
      layer=layer,
      observable=observable,
  )
  data_cfg, train_cfg, source = study.data_cfg, study.train_cfg, study.source
  base = source.history if source else study.train('history_base')[0]
  keep = min(base.num_seeds, max_base_seeds)
  base = base.select(slice(0, keep))
  at = _layer_index(study, layer)
  if at is not None:
    base = base.at_layer(at)
  head = observable or base.observables[0]  # R_plus, or R_mean for K > 2 classes
  if head not in base.observables:
    raise UserError(
        f'observable {head!r} is not one of this run\'s: {", ".join(base.observables)}.'
    )
  rule = train_cfg.t_star_rule
  plan = around_t_star(
      base, eps_grid, t_before, t_after, seed=train_cfg.seed, rule=rule, observable=head
  )
  P = base.num_examples
  history, noisy = retrain_removals(study, 'history', plan, sigmas)
  if at is not None:
    history = history.at_layer(at)

  curves = inversion_lib.curve_inversion(
      getattr(history, head), head, rule=rule, train_error_SxT=history.train_error
  )
  # A full-batch run is read up to where its loss first rose (SPEC §8's lr rule): past it an
  # "inversion" may be the oscillation's onset. Mini-batch losses may rise; every one counts.
  until = lr_lib.readable_until(history) if not train_cfg.batch_size else history.num_epochs
  readable = curves.inverted & (curves.t_star <= until)
  summary = {
      'dataset': data_cfg.dataset,
      'observable': head,
      'layer': layer,
      't_star_rule': rule,
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
        't_star': curves.t_star[rows].tolist(),
        'inversion_before_loss_rise': readable[rows].tolist(),
        'loss_fell_until': np.broadcast_to(until, curves.t_star.shape)[rows].tolist(),
        'rise': curves.rise[rows].tolist(),
        'test_error': history.test_error[rows, -1].tolist(),
        'train_error': history.train_error[rows, -1].tolist(),
        'noisy_test_error': {f'{s:g}': noisy[rows, i].tolist() for i, s in enumerate(sigmas)},
        'final': {k: getattr(history, k)[rows, -1].tolist() for k in history.observables},
    }
  heads = [
      k for k in ('stragglers', 'random', 'before_t_star', 'after_t_star') if k in plan.kinds()
  ]
  for kind in heads:
    summary[kind] = summary['kinds'][kind]  # the headline kinds, at the top level too
  summary['base_test_error'] = base.test_error[:, -1].tolist()  # at the base run's last epoch
  summary['base_epochs'] = base.num_epochs  # fewer than 'epochs' if the base run stopped early
  study.write_summary(summary)

  title = study.title if layer is None else f'{study.title}; S(t*) and curves at {layer}'
  study.draw(
      plots.pruned_R_plus_vs_epoch(
          {k: history.select(plan.rows(k)) for k in heads},
          {k: curves.inverted[plan.rows(k)] for k in heads},
          title,
          head,
      ),
      f'prune_{head}_vs_epoch',
  )
  if eps_grid:
    eps = np.asarray(eps_grid, float)
    at = lambda prefix, values: np.stack([values[plan.rows(prefix + eps_kind(e))] for e in eps])
    finals = {k: getattr(history, k)[:, -1] for k in history.observables}
    study.draw(
        plots.pruned_vs_eps(
            eps,
            {k: at('', v) for k, v in finals.items()},
            {k: at('random_', v) for k, v in finals.items()},
            {k: f'{style.STYLE[k]["label"]} at convergence' for k in finals},
            title,
        ),
        'prune_observables_vs_eps',
    )
    errors = {f'sigma={s:g}': noisy[:, i] for i, s in enumerate(sigmas)}
    study.draw(
        plots.pruned_vs_eps(
            eps,
            {k: at('', v) for k, v in errors.items()},
            {k: at('random_', v) for k, v in errors.items()},
            {k: f'test error, noise {k.replace("sigma", "σ")}' for k in errors},
            title,
        ),
        'prune_test_error_vs_eps',
    )
  study.commit()
  for kind in heads:
    k = summary[kind]
    log(
        f'{kind:>14s}: removed {np.mean(k["removed"]):7.1f}, inversion in '
        f'{int(np.sum(k["inversion"]))}/{len(k["inversion"])} runs '
        f'({int(np.sum(k["inversion_before_loss_rise"]))} before the loss rose), test error '
        f'{np.mean(k["test_error"]):.4f} +- {np.std(k["test_error"]):.4f}'
    )
  log(
      f'{"no removal":>14s}: test error {np.mean(summary["base_test_error"]):.4f} +- '
      f'{np.std(summary["base_test_error"]):.4f} (the base run at epoch {base.num_epochs})'
  )
  return summary
