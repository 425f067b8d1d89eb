"""The suspect examples of a data set (issue 26, SPEC §9): the stragglers as a data-quality tool,
beside the scores practitioners already use, all from the same runs.

One audit trains the seeds (stopping at the inversion where --stop_after_inversion applies)
with every per-example score recorded in the scan, and ranks every training example by how
suspect it is. The detectors, each a score over T (higher: more suspect):

  q                     the straggler frequency: the fraction of seeds whose S(t*) holds it;
  stragglers_majority   S(t*) in a majority of seeds (a flagged set: q > 1/2);
  1-confidence, -aum, forgetting, el2n_tK, grand_tK
                        the scores of the scan (cartography, AUM, forgetting events, EL2N and
                        GraNd at the score epochs), mean over seeds;
  cleanlab_<source>_<method>, cleanlab_<source>_issues
                        cleanlab's label quality scores (self_confidence, normalized_margin;
                        1 - quality) and find_label_issues (a flagged set), with pred_probs
                        in-sample at each seed's t* ('tstar') or at the last epoch ('last'),
                        averaged over seeds, and out-of-fold ('oof', --cleanlab=oof|all:
                        K-fold cross-validation with the same model and training).

The suspect ranking is q, ties broken by the in-sample 1 - p(given label) at the last epoch.
With a ground truth E (flipped labels, a --labels file with its clean labels, or the
published test-set errors, --groundtruth), every detector is scored (analysis/detection.py)
with its cost in seed-epochs. Writes examples.csv (one row per example: its index in the
split, the given label, the networks' label at t* and at the end (the seeds' majority vote),
q, every score), probs.npz (the in-sample probabilities at t* and at the end, and the
out-of-fold ones: what cleanlab takes), summary.json and suspects.png.
"""

import dataclasses
from typing import Callable, Dict, Optional

import numpy as np

from manifold_dynamics.analysis import detection, peers
from manifold_dynamics.analysis import inversion as inversion_lib
from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import groundtruth
from manifold_dynamics.engine import difficulty, evaluate
from manifold_dynamics.engine.state import TrainData
from manifold_dynamics.errors import UserError
from manifold_dynamics.plotting import audit as plots
from manifold_dynamics.records import io
from manifold_dynamics.records.io import write_csv
from manifold_dynamics.studies.skeleton import Study

CLEANLAB = ('none', 'insample', 'oof', 'all')  # which cleanlab detectors to compute
DEFAULT_SCORE_EPOCHS = (20,)  # data_diet's EL2N epoch


def class_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
  """Labels as class indices in [0, K): +1 -> 0 and -1 -> 1 for a binary task."""
  y = np.asarray(y)
  return np.where(y < 0, 1, 0) if num_classes == 2 else y.astype(np.int64)


def majority(probs_SxPxK: np.ndarray) -> np.ndarray:
  """(P,) the class most seeds predict (ties: the lower class)."""
  votes = np.argmax(probs_SxPxK, axis=-1)  # (S, P)
  K = probs_SxPxK.shape[-1]
  counts = np.stack([np.sum(votes == k, axis=0) for k in range(K)], axis=-1)
  return np.argmax(counts, axis=-1)


def ground_truth(task, path: Optional[str], train_split: str):
  """(E as a (P,) mask, its name) of the task: the flipped labels, the known wrong labels of a
  --labels file, or the published errors of `path`; (None, None) when nothing is known."""
  truth = task.truth or {}
  if path:
    found = groundtruth.published_errors(path, task.train_indices, task.classes_train)
    mask = np.isin(task.train_indices, found.errors)
    return mask, 'published test-set label errors'
  if 'mislabelled' in truth:
    return np.asarray(truth['mislabelled'], bool), 'labels differing from the clean ones'
  if 'flipped' in truth:
    return np.asarray(truth['flipped'], bool), 'flipped labels'
  return None, None


def run_audit(
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    workdir: str,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    cleanlab: str = 'insample',
    cv_folds: int = 5,
    cv_seeds: int = 2,
    groundtruth_path: Optional[str] = None,
    top: int = 40,
    task=None,
) -> dict:
  """The audit of the module docstring; returns its summary."""
  if cleanlab not in CLEANLAB:
    raise UserError(f'unknown --cleanlab={cleanlab!r}; choose one of {", ".join(CLEANLAB)}.')
  version = peers.cleanlab_modules()[2] if cleanlab != 'none' else None
  if cv_seeds < 1:
    raise UserError(f'--cv_seeds must be positive, got {cv_seeds}.')
  if groundtruth_path and data_cfg.train_split != 'test':
    raise UserError(
        f'--groundtruth={groundtruth_path} lists test-set label errors: train on the test split '
        '(--train_split=test).'
    )
  if not train_cfg.scores:
    train_cfg = dataclasses.replace(
        train_cfg, scores=('all',), score_epochs=train_cfg.score_epochs or DEFAULT_SCORE_EPOCHS
    )
  study = Study.open(
      'audit',
      data_cfg,
      train_cfg,
      workdir,
      overwrite=overwrite,
      log=log,
      task=task,
      cleanlab=cleanlab,
      cv_folds=cv_folds,
      cv_seeds=cv_seeds,
      groundtruth=groundtruth_path,
  )
  task, train_cfg = study.task, study.train_cfg
  truth, truth_name = ground_truth(task, groundtruth_path, data_cfg.train_split)
  K, P = task.num_classes, len(task.y_train)
  given = class_labels(task.y_train, K)

  history, states = study.train('history')
  if not study.writer:
    study.commit()
    return None
  rule = train_cfg.t_star_rule
  inv = inversion_lib.analyse(history, rule=rule)
  sets = inversion_lib.stragglers(history, inv.t_star)
  q = np.zeros(P)
  for s in sets:
    q[s] += 1.0 / len(sets)
  trained = history.num_epochs
  cost = {'run': int(train_cfg.seeds * trained)}

  data = TrainData.from_task(task)
  log(f'replaying every seed to its t* (at most epoch {int(inv.t_star.max())}) for its predictions')
  at_t_star = evaluate.replay_at(train_cfg, data, inv.t_star, ('probs',))['probs']
  cost['replay'] = int(train_cfg.seeds * (int(inv.t_star.max()) + 1))
  last = evaluate.probabilities(train_cfg, data, states)
  probs = {'tstar': at_t_star.mean(axis=0), 'last': last.mean(axis=0)}

  columns = {
      k: v.mean(axis=0)
      for k, v in difficulty.finalize(states.scores, train_cfg.score_epochs).items()
  }
  detectors: Dict[str, np.ndarray] = {'q': q}
  flags: Dict[str, np.ndarray] = {'stragglers_majority': q > 0.5}
  detectors['1-confidence'] = 1.0 - columns['confidence']
  detectors['-aum'] = -columns['aum']
  detectors['forgetting'] = columns['forgetting_events'].astype(np.float64)
  for name in columns:
    if name.startswith(('el2n_t', 'grand_t')):
      detectors[name] = columns[name]
  costs = {name: cost['run'] for name in list(detectors) + list(flags)}

  sources = {}
  if cleanlab in ('insample', 'all'):
    sources['tstar'] = (probs['tstar'], cost['run'] + cost['replay'])
    sources['last'] = (probs['last'], cost['run'])
  if cleanlab in ('oof', 'all'):
    oof, cost['cv'] = out_of_fold(study, train_cfg, data, given, cv_folds, cv_seeds, trained)
    probs['oof'] = oof
    sources['oof'] = (oof, cost['cv'])
  for source, (pred, source_cost) in sources.items():
    found = peers.cleanlab_detectors(given, pred)
    for method in peers.QUALITY_METHODS:
      detectors[f'cleanlab_{source}_{method}'] = found[method]
      costs[f'cleanlab_{source}_{method}'] = source_cost
    flags[f'cleanlab_{source}_issues'] = found['find_label_issues']
    costs[f'cleanlab_{source}_issues'] = source_cost

  suspicion = np.lexsort((-(1.0 - probs['last'][np.arange(P), given]), -q))  # most first
  net_t_star, net_last = majority(at_t_star), majority(last)
  io.write_npz(
      study.file('probs.npz'),
      labels=given,
      train_indices=task.train_indices,
      **{f'pred_probs_{k}': v.astype(np.float32) for k, v in probs.items()},
  )
  write_examples(
      study.file('examples.csv'), task, given, net_t_star, net_last, detectors, flags, truth
  )
  summary = {
      'dataset': data_cfg.dataset,
      'train_split': data_cfg.train_split,
      'task': data_cfg.task,
      'num_classes': K,
      'train_size': P,
      'seeds': train_cfg.seeds,
      'epochs_trained': trained,
      'stopped_early': trained < train_cfg.epochs,
      't_star_rule': rule,
      't_star_mean': float(inv.t_star.mean()),
      'phi_mean': float(inv.phi.mean()),
      'n_stragglers_mean': float(np.mean([len(s) for s in sets])),
      'cleanlab': cleanlab,
      'cleanlab_version': version,
      'cost_seed_epochs': cost,
      'suspects': task.train_indices[suspicion[:top]].tolist(),
      'network_disagrees_with_label': {
          'at_t_star': int(np.sum(net_t_star != given)),
          'at_end': int(np.sum(net_last != given)),
      },
  }
  if truth is not None:
    summary['groundtruth'] = {'what': truth_name, 'errors': int(truth.sum())}
    rows = {}
    for name, score in detectors.items():
      rows[name] = dict(detection.metrics(score, truth), cost=costs[name])
    for name, mask in flags.items():
      rows[name] = dict(
          detection.metrics(mask.astype(np.float64), truth, flag=mask), cost=costs[name]
      )
    summary['detection'] = rows
    error_ranks = {
        name: detection.ranks(score, np.flatnonzero(truth)).tolist()
        for name, score in detectors.items()
    }
    summary['error_ranks'] = {'indices': task.train_indices[truth].tolist(), **error_ranks}
    io.write_text(
        study.file('detection.md'),
        detection.table(rows, f'{truth_name}: {summary["groundtruth"]["errors"]} of {P}') + '\n',
    )
    log(detection.table(rows, truth_name))
  study.write_summary(summary)
  shape = task.input_shape
  if shape is not None and len(shape) == 3:
    order = suspicion[:top]
    study.draw(
        plots.suspects(
            task.x_train[order].reshape((len(order),) + tuple(shape)),
            given[order],
            net_last[order],
            task.train_indices[order],
            q[order],
            None if truth is None else truth[order],
            study.title,
        ),
        'suspects',
    )
  study.commit()
  return summary


def out_of_fold(study: Study, train_cfg: TrainConfig, data: TrainData, given, folds, seeds, epochs):
  """(P, K) out-of-fold probabilities: `folds` x `seeds` runs of the same model and training
  for `epochs` epochs in one program, each leaving out one stratified fold (weight 0) and then
  predicting it; each example's probabilities are the mean over the seeds of its fold. Returns
  them and the cost in seed-epochs."""
  fold = peers.stratified_folds(given, folds, seed=train_cfg.seed)
  weights = np.stack([(fold != f).astype(np.float32) for f in range(folds) for _ in range(seeds)])
  cv_cfg = dataclasses.replace(
      train_cfg,
      seeds=folds * seeds,
      seed=train_cfg.seed + 1000,
      epochs=epochs,
      stop_after_inversion=False,
      scores=(),
      score_epochs=(),
      test_every=0,
  )
  study.log(f'cross-validation: {folds} folds x {seeds} seeds, {epochs} epochs each')
  _, states = study.train('history_cv', cv_cfg, weights=weights)
  probs = evaluate.probabilities(cv_cfg, data, states)  # (folds * seeds, P, K)
  oof = np.zeros(probs.shape[1:])
  for f in range(folds):
    held = fold == f
    oof[held] = probs[f * seeds : (f + 1) * seeds, held].mean(axis=0)
  return oof, int(folds * seeds * epochs)


def write_examples(path, task, given, net_t_star, net_last, detectors, flags, truth):
  """examples.csv: one row per example of T, in the order of its split."""
  order = np.argsort(task.train_indices, kind='stable')
  header = ['index', 'given_label', 'network_label_tstar', 'network_label_last']
  cols = [task.train_indices, given, net_t_star, net_last]
  for name, values in detectors.items():
    header.append(name)
    cols.append(np.asarray(values, np.float64))
  for name, mask in flags.items():
    header.append(name)
    cols.append(np.asarray(mask).astype(np.int64))
  if truth is not None:
    header.append('known_error')
    cols.append(truth.astype(np.int64))

  def cell(v):
    return int(v) if isinstance(v, (np.integer, int)) else f'{float(v):.6g}'

  return write_csv(path, header, ([cell(c[i]) for c in cols] for i in order))
