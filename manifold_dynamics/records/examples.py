"""examples.csv: one row per training example, in the order of the train split, with every
per-example score of a run (its mean and spread over seeds). Cartography, AUM and cleanlab
users read it as it is; `analysis/` computes the columns, this module only writes them."""

from typing import Dict, Optional

import numpy as np

from manifold_dynamics.records.io import write_csv


def write_examples_csv(
    path: str,
    columns: Dict[str, np.ndarray],
    task,
    flipped: Optional[np.ndarray] = None,
    per_example: Optional[Dict[str, np.ndarray]] = None,
) -> str:
  """examples.csv: one row per training example in the order of the train split: its index
  there, original class, binary label as trained (and with label noise the true one and a
  flipped flag), every score's mean and std over seeds (`columns`, (seeds, P) each), the
  straggler frequency, and the (P,) columns of `per_example` (predictors, ground truth)."""
  order = np.argsort(task.train_indices, kind='stable')
  header = ['index', 'class', 'label']
  cols = [task.train_indices, task.classes_train, task.y_train]
  if flipped is not None:
    is_flipped = np.zeros(len(task.y_train), np.int32)
    is_flipped[flipped] = 1
    header += ['true_label', 'flipped']
    cols += [np.where(is_flipped == 1, -task.y_train, task.y_train), is_flipped]
  for name, values in columns.items():
    if name == 'straggler':
      continue
    values = np.asarray(values, np.float64)
    header += [f'{name}_mean', f'{name}_std']
    cols += [values.mean(axis=0), values.std(axis=0)]
  if 'straggler' in columns:
    header.append('straggler_frequency')
    cols.append(np.asarray(columns['straggler'], np.float64).mean(axis=0))
  for name, values in (per_example or {}).items():
    header.append(name)
    values = np.asarray(values)
    cols.append(values.astype(np.int64) if values.dtype == bool else values)
  return write_csv(path, header, ([_cell(c[i]) for c in cols] for i in order))


def _cell(value):
  if isinstance(value, (np.integer, int)):
    return int(value)
  return f'{float(value):.6g}'
