"""A conv net's full-batch learning rate by the SPEC §8 rule (issue 27): a sweep over models x
datasets x candidate lrs, each point a full-batch parity run with every layer measured; the
rule (analysis/learning_rate.py) reads each run, and per model the lr is the largest that
passes on every dataset.

Candidates are tried from the largest down: a point whose dataset already passed at a larger
lr is skipped (it is reported as not needed), on the assumption that a smaller step is
followed where a larger one is. The sweep is resumable and splittable like every sweep.
"""

import dataclasses
import os
from typing import Callable, Mapping, Optional, Sequence

from manifold_dynamics.analysis import learning_rate as rule
from manifold_dynamics.analysis.grid import RGB
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.plotting import learning_rate as plots
from manifold_dynamics.records import io
from manifold_dynamics.studies import sweeps
from manifold_dynamics.studies.inversion import run_inversion


def point_name(model: str, dataset: str, lr: float) -> str:
  return f'{model}-{dataset}-lr{lr:g}'


def run_learning_rate(
    models: Sequence[str],
    datasets: Sequence[str],
    lrs: Sequence[float],
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
    model_settings: Optional[Mapping[str, Mapping]] = None,
    layers: Optional[Mapping[str, str]] = None,
) -> dict:
  """Trains the points (module docstring) and writes the sweep's summary: per point whether
  the loss falls up to t* (`rule.check`), per model the lr chosen (`rule.choose`), and the
  loss curves (loss_vs_epoch.png)."""
  lrs = rule.candidates(lrs)
  points = []
  for model in dict.fromkeys(models):
    for dataset in dict.fromkeys(datasets):
      rgb = dataset.endswith(RGB)
      data = dataclasses.replace(
          data_cfg,
          dataset=dataset[: -len(RGB)] if rgb else dataset,
          task='parity',
          grey='rgb' if rgb else data_cfg.grey,
      )
      for lr in lrs:
        train = train_cfg.with_model(model, **((model_settings or {}).get(model) or {}))
        train = dataclasses.replace(
            train, lr=lr, batch_size=None, layers=(layers or {}).get(model, 'all')
        )
        labels = {'model': model, 'dataset': dataset, 'lr': lr}
        points.append(sweeps.Point(point_name(model, dataset, lr), data, train, labels))

  def passed(directory: str, model: str, dataset: str, below: float) -> Optional[float]:
    """A larger lr of the same model and dataset that already passes, or None."""
    for lr in lrs:
      if lr <= below:
        return None
      run_dir = os.path.join(os.path.dirname(directory), point_name(model, dataset, lr))
      if os.path.isfile(os.path.join(run_dir, 'summary.json')):
        if rule.check(io.load_run(run_dir).history)['passes']:
          return lr
    return None

  def train_point(point: sweeps.Point, directory: str, log: Callable[[str], None]):
    labels = point.labels
    larger = passed(directory, labels['model'], labels['dataset'], labels['lr'])
    if larger is not None:
      log(f'{point.name}: not needed, the loss already falls at lr {larger:g}')
      return
    run_inversion(point.data, point.train, directory, figures=False, log=log)

  sweep = sweeps.Sweep.run('learning_rate', points, workdir, workers, log, train_point=train_point)
  checks = {}
  histories = {}
  for p in sweep.done:
    history = sweep.load(p).history
    key = (p.labels['model'], p.labels['dataset'], p.labels['lr'])
    checks[key] = rule.check(history)
    histories[key] = history
  chosen = rule.choose(checks)
  summary = sweep.write_summary(
      {
          'rule': rule.RULE,
          'candidates': list(lrs),
          'points': {point_name(*k): v for k, v in checks.items()},
          'chosen': chosen,
          'skipped': [p.name for p in sweep.points if p not in sweep.done],
      }
  )
  for model, c in chosen.items():
    passes = ', '.join(
        f'{d}: {", ".join(f"{lr:g}" for lr in v) or "none"}' for d, v in c['passes'].items()
    )
    log(f'{model}: lr {c["lr"] if c["lr"] is not None else "none passes"} (passing: {passes})')
  if histories:
    sweep.draw(plots.loss_vs_epoch(histories, checks), 'loss_vs_epoch')
  return sweep.close(summary)
