"""The inversion study (Fig. 1b, Fig. 3a-d): train the seeds, find t*, phi and S(t*) (SPEC §5)."""

from typing import Callable

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.engine import difficulty
from manifold_dynamics.engine.train import TrainData, measured_layers
from manifold_dynamics.plotting import curves
from manifold_dynamics.plotting import inversion as plots
from manifold_dynamics.records import io
from manifold_dynamics.studies.skeleton import Study


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
  study = Study.open(
      'inversion',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      task=task,
      model=model,
  )
  history, states = study.train('history')
  if not study.writer:  # another process of a multi-host run: process 0 writes the results
    study.commit()
    return None

  task = study.task
  inv = inversion_lib.analyse(history, rule=train_cfg.t_star_rule)
  sets = inversion_lib.stragglers(history, inv.t_star)
  io.save_stragglers(study.file('stragglers.npz'), sets, task.train_indices, inv.t_star)
  if states.scores is not None:
    save_recorded_scores(study.run, states, train_cfg, task)
  summary = inversion_lib.summary(history, inv)
  summary['dataset'] = data_cfg.dataset
  if 'per_class' in summary:
    summary['per_class'].update(
        inversion_lib.class_stragglers(sets, task.y_train, summary['per_class'])
    )
  summary.update(t_star_rules(history, inv, train_cfg))
  layer_names = measured_layers(train_cfg, TrainData.from_task(task), model)
  summary['layer_names'] = layer_names
  per_layer = inversion_lib.layer_summary(history, rule=train_cfg.t_star_rule)
  if per_layer:
    summary['layers'] = per_layer
  study.write_summary(summary)

  if figures:
    study.draw(plots.inversion_vs_epoch(history, inv, study.title), 'inversion_vs_epoch')
    study.draw(
        curves.observables_vs_train_error([history], title=study.title, phi=summary['phi_mean']),
        'observables_vs_train_error',
    )
    study.draw(plots.R_plus_per_run(history, inv, study.title), 'R_plus_per_run')
  if per_layer:
    study.draw(plots.layers_vs_epoch(history, study.title, layer_names), 'layers_vs_epoch')
  log(format_summary(summary))
  if 'note' in summary:
    log(f'note: {summary["note"]}')
  study.commit()
  return summary


# summary.json's name of each --t_star_rule
READINGS = {
    'global': 'global_argmin',
    'first': 'first_confirmed',
    'after_transient': 'after_transient',
}


def t_star_rules(history, inv, train_cfg: TrainConfig) -> dict:
  """Which t* the headline numbers use, whether the run stopped before --epochs (then the
  global extremum is only that of the epochs trained), and every reading of SPEC §8."""
  stopped = history.num_epochs < train_cfg.epochs
  out = {
      't_star_rule': READINGS[train_cfg.t_star_rule],
      'stopped_early': stopped,
      'epochs_trained': history.num_epochs,
      'criteria': inversion_lib.criteria(history, rho=train_cfg.inversion_rho, reference=inv),
  }
  if stopped and train_cfg.t_star_rule == 'global':
    out['note'] = (
        f'stopped early at epoch {history.num_epochs} of {train_cfg.epochs} '
        '(--stop_after_inversion): t* is the global extremum of the epochs trained, and a '
        'later, deeper one would not be seen; the first confirmed t* '
        '(criteria.first_absolute, first_relative) and the after-transient one '
        '(criteria.after_transient_*) are exact.'
    )
  return out


def save_recorded_scores(run: io.RunDir, states, train_cfg: TrainConfig, task) -> dict:
  """scores.npz: the per-example scores accumulated during training (cfg.scores), each
  (seeds, P); returns them."""
  columns = difficulty.finalize(states.scores, train_cfg.score_epochs)
  io.save_scores(run.file('scores.npz'), columns, task.train_indices, train_cfg.score_epochs)
  return columns


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
  criteria = summary.get('criteria')
  if criteria:
    head = next(iter(summary['t_star']))
    for key in ('first_absolute', 'first_relative', 'global_relative', 'after_transient_absolute'):
      c = criteria[key]
      lines.append(
          f'{key.replace("_", " ")} (rho = {criteria["rho"]:g}): phi = {c["phi_mean"]:.4f}, '
          f'{head} inverts in {c["inversion_fraction"][head]:.0%} of seeds, t* differs from '
          f'the headline in {c.get("t_star_differs", {}).get(head, 0):.0%}'
      )
  transient = summary.get('transient')
  if transient:
    lines.append(
        'initial transient (SPEC §8): '
        + ', '.join(
            f'{name} in {t["fraction"]:.0%} of seeds'
            + (
                f' (peak at epoch {t["epoch_mean"]:.1f}, height {t["height_mean"]:.3f})'
                if t['fraction']
                else ''
            )
            for name, t in transient.items()
        )
    )
  return '\n'.join(lines)
