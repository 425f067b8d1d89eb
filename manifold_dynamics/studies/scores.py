"""Stragglers beside the other example-difficulty scores, on the same training runs (issue 12).

The scores are recorded during training (`difficulty.py`, TrainConfig.scores) and completed
here: EL2N and GraNd at each seed's own t* by replaying its training to t*
(`evaluate.replay_at`), the input norm, and straggler membership S(t*). Every score is a
column of (seeds, P) values; `score_columns.HARDER` orients each so that its top-k are the k
hardest examples, ties broken at random. With k = |S(t*)| of each seed, the comparison asks:

  spearman            rank correlation of every pair of columns, per seed, mean and spread;
  topk_vs_stragglers  overlap, Jaccard index and hypergeometric z (stragglers.overlap, pairing
                      seed s's top-k with seed s's S(t*)) of each score's top-k with S(t*);
  stability           the same statistics for one score's top-k sets of disjoint seed pairs:
                      is S(t*) more or less stable than the EL2N or forgetting top-k?
  last_to_leave       are the stragglers the examples that leave the misclassified set last?
  label_noise         with --label_noise, precision and recall of each top-k at finding the
                      flipped examples, and how many flipped examples are stragglers.

Pruning by score (`removals.by_score`) removes each score's top-k, its bottom-k, or a random set
of the same size, retrains (pruning.py's one-program retraining) and tests on the sigma grid.
"""

import os
from typing import Callable, Optional, Sequence

import numpy as np

from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.analysis import removals
from manifold_dynamics.analysis.scores import (
    COMPARED,
    compare_with,
    compared_columns,
    hardness,
    label_noise_hits,
    last_to_leave,
    spearman,
    stability,
    straggler_columns,
    top_k,
    top_k_sets,
)
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data.task import flipped_indices, standardise
from manifold_dynamics.engine import difficulty, distributed, evaluate
from manifold_dynamics.engine.state import TrainData
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import scores as plots
from manifold_dynamics.records import examples, io
from manifold_dynamics.records import scores as score_columns
from manifold_dynamics.studies import pruning
from manifold_dynamics.studies.skeleton import Study

DEFAULT_SCORE_EPOCHS = (5, 10, 20)  # early epochs, before t* (30-50 on the MNIST defaults)
DEFAULT_PRUNE = (
    'straggler',
    'forgetting_events',
    'el2n_tstar',
    'grand_tstar',
    'confidence',
    'variability',
    'aum',
    'input_norm',
)


def check_recorded(from_run: str, recorded: TrainConfig, scores, score_epochs):
  """A one-line error unless the run `from_run` recorded `scores` at `score_epochs`."""
  missing = [g for g in score_columns.groups_of(scores) if g not in recorded.scores]
  beyond = [e for e in score_epochs if e >= recorded.epochs]
  if beyond:
    raise UserError(
        f'--score_epochs={beyond[0]} is beyond the run {from_run}, which trained '
        f'{recorded.epochs} epochs; use epochs in [0, {recorded.epochs - 1}].'
    )
  captured = [g for g in score_columns.CAPTURED if g in scores]
  absent = [e for e in score_epochs if captured and e not in recorded.score_epochs]
  if missing or absent:
    what = (
        f'the scores {", ".join(missing)}'
        if missing
        else f'the score epochs {",".join(map(str, absent))}'
    )
    raise UserError(
        f'{from_run} was recorded without {what}; record them with python '
        f'experiments/inversion.py --scores={",".join(scores)} '
        f'--score_epochs={",".join(map(str, score_epochs))} (and that run\'s settings), or run '
        f'experiments/scores.py without --from_run to train here.'
    )


def run_scores(
    data_cfg: Optional[DataConfig],
    train_cfg: TrainConfig,
    workdir: str,
    from_run: Optional[str] = None,
    prune_columns: Sequence[str] = DEFAULT_PRUNE,
    sigmas: Sequence[float] = pruning.SIGMAS,
    max_base_seeds: int = 10,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
  """Records the scores `train_cfg.scores` (at `train_cfg.score_epochs`) while training, or
  reads them from `from_run` (an inversion run recorded with them; its settings replace
  `train_cfg`, and `data_cfg`, None to take the run's, must name its dataset), then compares
  them with the stragglers, prunes by each score in `prune_columns` (the top-k, bottom-k and
  random sets of the first `max_base_seeds` seeds, retrained together; 0 = no pruning), and
  writes the run directory (see experiments/scores.py). Returns the summary."""
  if distributed.multi_process():
    raise UserError(
        'experiments/scores.py runs on one host: record the scores with '
        'experiments/inversion.py --distributed --scores=..., then analyse with --from_run.'
    )
  if max_base_seeds < 0:
    raise UserError(f'--max_base_seeds must be >= 0, got {max_base_seeds}.')
  requested, score_epochs = train_cfg.scores, train_cfg.score_epochs

  def prepare(run_data_cfg: DataConfig, run_train_cfg: TrainConfig, source):
    if source is not None:
      if source.summary is None:
        raise UserError(f'{from_run} is not a finished run; finish it (rerun its command) first.')
      if data_cfg is not None and data_cfg.dataset != run_data_cfg.dataset:
        raise UserError(
            f'--from_run={from_run} is a {run_data_cfg.dataset} run but '
            f'--dataset={data_cfg.dataset}; drop --dataset or pass a {data_cfg.dataset} run.'
        )
      check_recorded(from_run, run_train_cfg, requested, score_epochs)
    if run_train_cfg.seeds < 2:
      raise UserError('comparing scores across seeds needs --seeds >= 2.')
    unknown = [c for c in prune_columns if c not in COMPARED]
    if unknown:
      raise UserError(
          f'unknown score {unknown[0]!r} in --prune_scores; choose among {", ".join(COMPARED)}.'
      )

  study = Study.open(
      'scores',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      from_run=from_run,
      prepare=prepare,
      scores=list(requested),
      prune_scores=list(prune_columns),
      sigmas=list(sigmas),
      max_base_seeds=max_base_seeds,
  )
  data_cfg, train_cfg, task, source = study.data_cfg, study.train_cfg, study.task, study.source
  data = TrainData.from_task(task)
  if source is not None:
    history = source.history
    recorded = io.load_scores(os.path.join(from_run, 'scores.npz'))
    columns = {k: v for k, v in recorded.items() if _requested(k, requested, score_epochs)}
  else:
    history, states = study.train('history')
    columns = difficulty.finalize(states.scores, score_epochs) if states.scores else {}
  P, S = history.num_examples, history.num_seeds
  inv = inversion_lib.analyse(history)
  t_star = inv.t_star
  sets = inversion_lib.stragglers(history, t_star)
  io.save_stragglers(study.file('stragglers.npz'), sets, task.train_indices, t_star)
  captured = [g for g in score_columns.CAPTURED if g in requested]
  if captured:
    log(f"replaying training to each seed's t* ({t_star.min()}-{t_star.max()}) for {captured}")
    for k, v in evaluate.replay_at(train_cfg, data, t_star, captured).items():
      columns[f'{k}_tstar'] = v
  if 'input_norm' in requested:
    (x_std,), _, _ = standardise(task.x_train)
    columns['input_norm'] = np.broadcast_to(np.linalg.norm(x_std, axis=1), (S, P))
  columns['straggler'] = straggler_columns(sets, P)
  io.save_scores(study.file('scores.npz'), columns, task.train_indices, score_epochs)
  flipped = flipped_indices(P, data_cfg.label_noise) if data_cfg.label_noise else None
  if flipped is not None:
    io.write_npz(
        study.file('label_noise.npz'),
        flipped=flipped.astype(np.int64),
        split_indices=task.train_indices[flipped],
        fraction=np.float64(data_cfg.label_noise),
    )
  examples.write_examples_csv(study.file('examples.csv'), columns, task, flipped)

  names = compared_columns(columns)
  ks = [len(s) for s in sets]
  tops = {n: top_k_sets(hardness(columns, n), ks, train_cfg.seed) for n in names}
  summary = {
      'dataset': data_cfg.dataset,
      'seeds': S,
      'epochs': history.num_epochs,
      'train_size': P,
      'label_noise': None,
      'scores': names,
      'k_mean': float(np.mean(ks)),
      't_star_mean': float(np.mean(t_star)),
      'phi_mean': float(np.mean(inv.phi)),
      'phi_std': float(np.std(inv.phi)),
      'inversion_fraction': {k: float(np.mean(c.inverted)) for k, c in inv.curves.items()},
      'final_test_error': float(np.nanmean(history.test_error[:, -1])),
      'spearman': spearman(columns, names),
      'topk_vs_stragglers': {n: compare_with(tops[n], sets, P) for n in names},
      'stability': {n: stability(tops[n], P) for n in names},
  }
  if 'learned_epoch' in columns:
    summary['last_to_leave'] = last_to_leave(columns['learned_epoch'], sets, t_star)
  if flipped is not None:
    summary['label_noise'] = {
        n: label_noise_hits(
            tops[n],
            flipped,
            top_k_sets(hardness(columns, n), [len(flipped)] * S, train_cfg.seed),
        )
        for n in names
    }
    summary['label_noise']['fraction'] = data_cfg.label_noise
    summary['label_noise']['flipped'] = len(flipped)
    summary['label_noise']['flipped_stragglers'] = float(
        np.mean([len(np.intersect1d(s, flipped)) for s in sets])
    )
  title = study.title + (f', label noise {data_cfg.label_noise:g}' if flipped is not None else '')
  if max_base_seeds and prune_columns:
    summary['prune'] = _prune(
        study, data, columns, prune_columns, ks, sigmas, max_base_seeds, history, title
    )
  study.write_summary(summary)
  _figures(study, columns, names, title)
  log(format_summary(summary))
  study.commit()
  return summary


def _requested(column: str, requested, score_epochs) -> bool:
  """Whether a recorded column is one of the `requested` scores at `score_epochs`."""
  if column.endswith('_tstar'):  # a scores run's own replay: replayed again here
    return False
  if score_columns.column_kind(column) in score_columns.CAPTURED:
    epoch = int(column.rsplit('_t', 1)[1])
    return score_columns.group_of(column) in requested and epoch in score_epochs
  return score_columns.group_of(column) in requested


def _prune(study, data, columns, names, ks, sigmas, max_base_seeds, base, title) -> dict:
  names = [n for n in names if n in columns]
  plan = removals.by_score(columns, names, ks, max_base_seeds, study.train_cfg.seed)
  base_seeds = min(max_base_seeds, len(ks))
  history, noisy = pruning.retrain_removals(study, 'history_prune', plan, sigmas, data)
  curves = inversion_lib.curve_inversion(history.R_plus, 'R_plus')
  out = {}
  for kind in plan.kinds():
    rows = plan.rows(kind)
    out[kind] = {
        'removed': [len(plan.removed[r]) for r in rows],
        'inversion': curves.inverted[rows].tolist(),
        'rise': curves.rise[rows].tolist(),  # of R+ after its minimum (inversion: > delta)
        'test_error': {f'{s:g}': float(noisy[rows, i].mean()) for i, s in enumerate(sigmas)},
        'test_error_runs': {f'{s:g}': noisy[rows, i].tolist() for i, s in enumerate(sigmas)},
    }
  # the base runs themselves, clean test set only
  out['none'] = {'test_error': {'0': float(np.nanmean(base.test_error[:base_seeds, -1]))}}
  study.draw(
      plots.test_error_vs_sigma(
          np.asarray(sigmas, float),
          {k: noisy[plan.rows(k)] for k in plan.kinds()},
          title,
      ),
      'prune_test_error_vs_sigma',
  )
  return out


def _figures(study, columns, names, title):
  task = study.task
  mean = {k: np.asarray(v, np.float64).mean(axis=0) for k, v in columns.items()}
  if 'confidence' in mean and 'variability' in mean:
    study.draw(
        plots.data_map(mean['confidence'], mean['variability'], mean['straggler'], title),
        'data_map',
    )
  if not study.image_shape:
    return
  hardest = {}
  for n in names:
    hard = hardness(mean, n)
    hardest[n] = top_k(hard, 10, np.random.default_rng(0))
    hardest[n] = hardest[n][np.argsort(-hard[hardest[n]], kind='stable')]
  study.draw(
      plots.hardest_grid(
          {n: task.x_train[i].reshape((-1,) + study.image_shape) for n, i in hardest.items()},
          {n: task.y_train[i] for n, i in hardest.items()},
          {n: task.train_indices[i] for n, i in hardest.items()},
          title,
      ),
      'hardest_examples',
  )


def format_summary(summary: dict) -> str:
  """The comparison as a few lines: per score, its top-k against S(t*) and its stability."""
  lines = [
      f'phi = {summary["phi_mean"]:.4f} +- {summary["phi_std"]:.4f}, R+ inverts in '
      f'{summary["inversion_fraction"]["R_plus"]:.0%} of seeds; k = |S(t*)| = '
      f'{summary["k_mean"]:.1f} of {summary["train_size"]}, t* = {summary["t_star_mean"]:.1f}',
      'score: Spearman with straggler, top-k overlap with S(t*) (Jaccard, z), seed-to-seed z '
      'and shared fraction',
  ]
  num = lambda v: 'n/a' if v is None else f'{v:.2f}'
  for n in summary['scores']:
    rho = summary['spearman'].get('straggler', {}).get(n)
    top, stab = summary['topk_vs_stragglers'][n], summary['stability'][n]
    lines.append(
        f'  {n:>18s}: rho {num(rho and rho["mean"])}, overlap {top["overlap_mean"]:.1f} '
        f'(J {top["jaccard"]:.2f}, z {num(top["z"])}), stability z {num(stab["z"])}, shared '
        f'{num(stab["shared_fraction"])}'
    )
  if summary.get('label_noise'):
    ln = summary['label_noise']
    lines.append(
        f'label noise {ln["fraction"]:g} ({ln["flipped"]} flipped, '
        f'{ln["flipped_stragglers"]:.1f} of them stragglers): precision / recall of each '
        f'top-k, precision of its top-{ln["flipped"]}: '
        + ', '.join(
            f'{n} {ln[n]["precision"]:.2f}/{ln[n]["recall"]:.2f}, '
            f'{ln[n]["precision_at_flipped"]:.2f}'
            for n in summary['scores']
        )
    )
  for kind, row in summary.get('prune', {}).items():
    if 'inversion' in row:
      errors = ' '.join(f'{v:.4f}' for v in row['test_error'].values())
      lines.append(
          f'  prune {kind:>24s}: inversion {int(np.sum(row["inversion"]))}/'
          f'{len(row["inversion"])} (rise of R+ {np.mean(row["rise"]):.3f}), test error by '
          f'sigma {errors}'
      )
  return '\n'.join(lines)
