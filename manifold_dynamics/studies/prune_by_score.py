"""Data pruning by score (issue 26, SPEC §9; after Paul et al. 2021, data_diet, and Sorscher et
al. 2022): rank T by a detector of an audit, keep a fraction kappa of it (the hardest or the
easiest), retrain from scratch with the same number of updates as on the full T, and test on
the clean test set; beside a random subset of the same size. With `remove`, the variant for
noisy labels: remove each detector's k top suspects (and a random set of k) and retrain.

Every retraining is a 0/1 weight vector over T, so all of them (points x seeds) train in one
vmapped program with the audit's own model and settings (full batch: an epoch is one update,
so the same --epochs is the same number of updates whatever kappa); the standardisation is
recomputed on each kept set inside the engine. The scores are the audit's examples.csv
columns (means over its seeds), higher meaning harder (more suspect).
"""

import csv
import dataclasses
import os
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import prune_by_score as plots
from manifold_dynamics.studies.skeleton import Study

SCORES = ('q', 'el2n_t20', 'forgetting', '-aum')  # data_diet's, the forgetting events, AUM
KAPPAS = (0.9, 0.7, 0.5, 0.3)
ENDS = ('hard', 'easy')  # keep the highest scores, or the lowest


def read_columns(path: str, train_indices: np.ndarray) -> Dict[str, np.ndarray]:
  """{column: (P,) float} of an audit's examples.csv, in the order of T (`train_indices`)."""
  if not os.path.isfile(path):
    raise UserError(
        f'{path} does not exist: --from_run must be an audit run (experiments/audit.py).'
    )
  with open(path) as f:
    rows = list(csv.DictReader(f))
  index = np.array([int(r['index']) for r in rows])
  position = {i: k for k, i in enumerate(index)}
  order = np.array([position[i] for i in train_indices])
  return {
      name: np.array([float(r[name]) for r in rows])[order] for name in rows[0] if name != 'index'
  }


def keep_sets(
    columns: Dict[str, np.ndarray],
    scores: Sequence[str],
    kappas: Sequence[float],
    ends: Sequence[str],
    seed: int,
) -> Dict[str, np.ndarray]:
  """{point: (P,) bool kept} for every score x kappa x end, and 'random' per kappa; ties in a
  score broken at random (seeded)."""
  P = len(next(iter(columns.values())))
  rng = np.random.default_rng(seed)
  jitter = rng.random(P)
  out = {}
  for kappa in kappas:
    n = int(round(kappa * P))
    for name in scores:
      hardest_first = np.lexsort((jitter, -columns[name]))
      for end in ends:
        chosen = hardest_first[:n] if end == 'hard' else hardest_first[::-1][:n]
        out[f'{name}:{end}:{kappa:g}'] = np.isin(np.arange(P), chosen)
    out[f'random::{kappa:g}'] = np.isin(np.arange(P), rng.choice(P, n, replace=False))
  return out


def remove_sets(
    columns: Dict[str, np.ndarray], scores: Sequence[str], k: int, seed: int
) -> Dict[str, np.ndarray]:
  """{point: (P,) bool kept}: each score's k top suspects removed, and a random set of k."""
  P = len(next(iter(columns.values())))
  rng = np.random.default_rng(seed)
  jitter = rng.random(P)
  out = {}
  for name in scores:
    top = np.lexsort((jitter, -columns[name]))[:k]
    out[f'{name}:remove:{k}'] = ~np.isin(np.arange(P), top)
  out[f'random:remove:{k}'] = ~np.isin(np.arange(P), rng.choice(P, k, replace=False))
  return out


def run_prune_by_score(
    from_run: str,
    workdir: str,
    scores: Sequence[str] = SCORES,
    kappas: Sequence[float] = KAPPAS,
    ends: Sequence[str] = ENDS,
    seeds: int = 10,
    epochs: Optional[int] = None,
    remove: Optional[int] = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    seed_batch: int = 0,
) -> dict:
  """Retrains every kept set of the audit `from_run` (module docstring) with `seeds` seeds for
  `epochs` (default: the audit's) and writes the clean test error of every point.
  `seed_batch` > 0 trains the runs that many at a time (memory only, as --seed_batch)."""
  if seeds < 1:
    raise UserError(f'--seeds must be positive, got {seeds}.')
  if any(not 0 < k <= 1 for k in kappas):
    raise UserError(f'--kappas must be fractions in (0, 1], got {list(kappas)}.')
  path = os.path.join(from_run, 'examples.csv')
  if not os.path.isfile(path):
    raise UserError(
        f'{path} does not exist: --from_run must be an audit run (experiments/audit.py).'
    )
  with open(path) as f:
    header = next(csv.reader(f))
  unknown = [s for s in scores if s not in header]
  if unknown:
    raise UserError(
        f'--scores names {unknown[0]!r}, not a column of {path}; it has '
        f'{", ".join(header[4:])}.'
    )
  study = Study.open(
      'prune_by_score',
      None,
      None,
      workdir,
      overwrite=overwrite,
      log=log,
      from_run=from_run,
      scores=list(scores),
      kappas=list(kappas),
      ends=list(ends),
      seeds=seeds,
      remove=remove,
  )
  task, base_cfg = study.task, study.train_cfg
  columns = read_columns(path, task.train_indices)
  seed = base_cfg.seed + 7
  if remove is not None:
    kept = remove_sets(columns, scores, remove, seed)
  else:
    kept = keep_sets(columns, scores, kappas, ends, seed)
  kept = {'full': np.ones(len(task.y_train), bool), **kept}
  names = list(kept)
  weights = np.repeat(np.stack([kept[n] for n in names]).astype(np.float32), seeds, axis=0)
  cfg = dataclasses.replace(
      base_cfg,
      seeds=len(weights),
      seed=base_cfg.seed + 1,
      epochs=epochs or base_cfg.epochs,
      stop_after_inversion=False,
      scores=(),
      score_epochs=(),
      test_every=0,
      seed_batch=seed_batch,
  )
  log(f'retraining {len(names)} sets x {seeds} seeds = {cfg.seeds} runs, {cfg.epochs} epochs each')
  history, _ = study.train('history', cfg, weights=weights)
  error = history.test_error[:, -1].reshape(len(names), seeds)
  points = {
      name: {
          'kept': int(kept[name].sum()),
          'test_error': error[i].tolist(),
          'test_error_mean': float(error[i].mean()),
          'test_error_sem': float(error[i].std() / np.sqrt(seeds)),
          'train_error_mean': float(history.train_error[i * seeds : (i + 1) * seeds, -1].mean()),
      }
      for i, name in enumerate(names)
  }
  summary = {
      'from_run': from_run,
      'train_size': len(task.y_train),
      'epochs': cfg.epochs,
      'seeds_per_point': seeds,
      'seed_batch': cfg.seed_batch,  # runs trained at a time (0: all); memory only
      'updates': 'full batch: one update per epoch, the same for every kept fraction',
      'points': points,
      'cost_seed_epochs': int(cfg.seeds * cfg.epochs),
  }
  study.write_summary(summary)
  if remove is None:
    study.draw(
        plots.test_error_vs_kappa(points, scores, kappas, ends, study.title), 'test_error_vs_kappa'
    )
  study.commit()
  for name, p in points.items():
    error = f'{p["test_error_mean"]:.4f} +- {p["test_error_sem"]:.4f}'
    log(f'{name:>22s}: kept {p["kept"]:6d}, clean test error {error}')
  return summary


def table(points: Dict[str, dict], full: Optional[dict] = None) -> str:
  """The points of a pruning run as Markdown, one line per score and end, one column per
  kappa (or per removal)."""
  groups = {}
  for name, p in points.items():
    if name == 'full':
      continue
    score, end, what = name.split(':')
    groups.setdefault((score, end), {})[what] = p
  whats = list(dict.fromkeys(w for g in groups.values() for w in g))
  lines = [
      '| score | kept | ' + ' | '.join(whats) + ' |',
      '| --- | --- | ' + ' | '.join('---' for _ in whats) + ' |',
  ]
  for (score, end), g in groups.items():
    cells = [
        f'{g[w]["test_error_mean"]:.4f} ± {g[w]["test_error_sem"]:.4f}' if w in g else '-'
        for w in whats
    ]
    lines.append(f'| {score} | {end or "-"} | ' + ' | '.join(cells) + ' |')
  if 'full' in points:
    f = points['full']
    lines.append(f'| full T | all | {f["test_error_mean"]:.4f} ± {f["test_error_sem"]:.4f} |')
  return '\n'.join(lines)
