"""The run directory contract: what every experiment writes and every notebook reads.

A run directory holds, in the order they are written:
  config.json       every setting, the package version, the JAX backend and devices;
  history.npz       arrays (seeds, epochs + 1): R_plus, R_minus, D, loss, train_error,
                    test_error; with --layers=all also layer_R_plus, layer_R_minus,
                    layer_D (seeds, epochs + 1, L - 1), every hidden layer, the first one
                    first; mistakes_packed (seeds, epochs + 1, ceil(P / 8)) uint8, the
                    np.packbits of the misclassified mask; num_examples (P); train_indices (P,),
                    each training example's index in the dataset's train split;
  stragglers.npz    S(t*) of every seed, ragged: indices (into the training slice) and
                    split_indices (into the train split) concatenated over seeds, offsets
                    (seeds + 1,), t_star (seeds,);
  summary.json      the headline numbers (see inversion.summary);
  *.png, *.pdf      figures.
Files are written atomically (temp file + rename). A run is built in a staging directory
NAME.partial-TIMESTAMP and moved to NAME when complete, so an interrupted or diverged run never
leaves a half-written NAME and never destroys an earlier one; an existing NAME is replaced only
with overwrite=True, and only once the new run is complete.
"""

import json
import os
import shutil
import time
from typing import List, NamedTuple, Optional

import numpy as np

from manifold_dynamics.errors import UserError
from manifold_dynamics.train import History


def _atomic(path: str, write):
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    write(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def strict_json(obj):
  """`obj` with every non-finite float replaced by None, so the file is standard JSON (json
  would write NaN and Infinity, which other readers reject)."""
  if isinstance(obj, float):
    return obj if np.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: strict_json(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict_json(v) for v in obj]
  return obj


def write_json(path: str, obj) -> str:
  """Writes `obj` as standard JSON: NaN and infinities become null."""
  def write(tmp):
    with open(tmp, 'w') as f:
      json.dump(strict_json(obj), f, indent=2, sort_keys=False, allow_nan=False)
      f.write('\n')
  _atomic(path, write)
  return path


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def write_npz(path: str, **arrays) -> str:
  def write(tmp):
    with open(tmp, 'wb') as f:
      np.savez_compressed(f, **arrays)
  _atomic(path, write)
  return path


class RunDir:
  """A run directory being written; see the module docstring for the contract."""

  def __init__(self, path: str, overwrite: bool = False):
    self.path = os.path.abspath(path)
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      raise UserError(f'{self.path} exists and is not a directory; choose another --workdir.')
    if os.path.isdir(self.path) and os.listdir(self.path) and not overwrite:
      raise UserError(f'run directory {self.path} already exists; pass --overwrite to replace '
                      f'it or choose another --workdir.')
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    self.staging = f'{self.path}.partial-{stamp}-{os.getpid()}'
    os.makedirs(self.staging)

  def file(self, name: str) -> str:
    """Path of `name` inside the (staging) directory being written."""
    return os.path.join(self.staging, name)

  def commit(self) -> str:
    """Moves the finished run into place, replacing an earlier run only now."""
    old = None
    if os.path.exists(self.path):
      old = f'{self.staging}.replaced'
      os.replace(self.path, old)
    os.replace(self.staging, self.path)
    if old:
      shutil.rmtree(old)
    return self.path


def save_history(path: str, history: History, train_indices: np.ndarray) -> str:
  layers = {k: getattr(history, k) for k in History.LAYER_ARRAYS
            if getattr(history, k) is not None}
  return write_npz(path, **{k: getattr(history, k) for k in History.ARRAYS}, **layers,
                   mistakes_packed=history.mistakes_packed,
                   num_examples=np.int64(history.num_examples),
                   train_indices=np.asarray(train_indices, np.int64))


def load_history(path: str) -> History:
  with np.load(path) as f:
    layers = {k: f[k] for k in History.LAYER_ARRAYS if k in f}
    return History(**{k: f[k] for k in History.ARRAYS}, mistakes_packed=f['mistakes_packed'],
                   num_examples=int(f['num_examples']), **layers)


def save_stragglers(path: str, sets: List[np.ndarray], train_indices: np.ndarray,
                    t_star: np.ndarray) -> str:
  offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
  indices = np.concatenate(sets).astype(np.int64) if sets else np.zeros(0, np.int64)
  return write_npz(path, indices=indices, split_indices=np.asarray(train_indices)[indices],
                   offsets=offsets, t_star=np.asarray(t_star, np.int64))


def load_stragglers(path: str, split: bool = False) -> List[np.ndarray]:
  """S(t*) per seed, as indices into the training slice (or the train split if `split`)."""
  with np.load(path) as f:
    values, offsets = f['split_indices' if split else 'indices'], f['offsets']
  return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


class Run(NamedTuple):
  """Everything a finished run directory holds (figures aside)."""

  path: str
  config: dict
  history: History
  summary: Optional[dict]
  train_indices: np.ndarray


def load_run(path: str) -> Run:
  """Reads a run directory written by an experiment."""
  if not os.path.isfile(os.path.join(path, 'config.json')):
    raise UserError(f'{path} is not a run directory (no config.json).')
  with np.load(os.path.join(path, 'history.npz')) as f:
    train_indices = f['train_indices']
  summary_path = os.path.join(path, 'summary.json')
  return Run(path, read_json(os.path.join(path, 'config.json')),
             load_history(os.path.join(path, 'history.npz')),
             read_json(summary_path) if os.path.exists(summary_path) else None,
             train_indices)
