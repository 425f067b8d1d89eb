"""The run directory contract: what every experiment writes and every notebook reads.

A run directory holds, in the order they are written:
  config.json       every setting, the package version, the JAX backend and devices;
  history/          the records of the training, streamed chunk by chunk (store.py has the
                    format): R_plus.npy, R_minus.npy, D.npy, loss.npy, train_error.npy,
                    test_error.npy (epochs + 1, seeds), epoch-major; with --layers=all also
                    layer_R_plus.npy & co. (epochs + 1, seeds, L - 1), every hidden layer, the
                    first one first; mistakes_packed.npy (epochs + 1, seeds, ceil(P / 8)) uint8,
                    the np.packbits of the misclassified mask; train_indices.npy (P,), each
                    training example's index in the dataset's train split; progress.json
                    (num_examples = P, epochs written, status); checkpoint.npz, the training
                    state (weights after the last update). `load_history` gives it as a
                    `History` of (seeds, epochs + 1, ...) memory-mapped views. Runs written
                    before streaming hold history.npz instead, the same arrays seed-major.
  stragglers.npz    S(t*) of every seed, ragged: indices (into the training slice) and
                    split_indices (into the train split) concatenated over seeds, offsets
                    (seeds + 1,), t_star (seeds,);
  summary.json      the headline numbers (see inversion.summary);
  *.png, *.pdf      figures.
Files are written atomically (temp file + rename, or append then a progress file). A run is
built in NAME.partial and moved to NAME when complete, so an interrupted or diverged run never
leaves a half-written NAME and never destroys an earlier one; an existing NAME is replaced only
with overwrite=True, and only once the new run is complete. Running the same command again on
an unfinished NAME.partial resumes it from its last checkpoint (`RunDir`); `load_run` reads a
NAME.partial too, e.g. to plot a run while it trains.
"""

import csv
import json
import os
import shutil
import tempfile
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

import numpy as np

from manifold_dynamics.errors import UserError
from manifold_dynamics.records import store
from manifold_dynamics.records.history import History


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


def write_text(path: str, text: str) -> str:
  """Writes `text` (a Markdown table, ...) atomically."""

  def write(tmp):
    with open(tmp, 'w') as f:
      f.write(text)

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


def write_csv(path: str, header: Sequence[str], rows: Iterable[Sequence]) -> str:
  """A plain CSV file (a header line, then one line per row), written atomically."""

  def write(tmp):
    with open(tmp, 'w', newline='') as f:
      out = csv.writer(f)
      out.writerow(header)
      out.writerows(rows)

  _atomic(path, write)
  return path


_NOT_COMPARED = ('environment', 'resumed_by')  # config.json keys a resumed run may change


class OneProcess:
  """The processes of a run on one host, the default of `RunDir`: this one writes, and
  decides alone. A multi-host run passes `engine.distributed`, which has the same two
  functions over every process of the run."""

  @staticmethod
  def is_writer() -> bool:
    return True

  @staticmethod
  def any_process(flag: bool) -> bool:
    return bool(flag)


class RunDir:
  """A run directory being written; see the module docstring for the contract.

  The run is built in NAME.partial. Opening a NAME whose NAME.partial exists resumes it: the
  files already there are kept, `begin` refuses a different configuration (or, when nothing
  was trained yet, as after running out of memory in the first chunk, starts afresh), and
  every training streamed with `history_store` continues from its last checkpoint. In a
  multi-host run only process 0 writes here; the other processes write into a temporary
  directory that `commit` deletes, and follow process 0's refusals (`processes`: the
  run's processes, `OneProcess` or `engine.distributed`)."""

  def __init__(self, path: str, overwrite: bool = False, processes=OneProcess):
    self.path = os.path.abspath(path)
    self.overwrite = overwrite
    self.processes = processes
    self.writer = processes.is_writer()
    self.staging = f'{self.path}.partial'
    error = None
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      error = f'{self.path} exists and is not a directory; choose another --workdir.'
    elif os.path.isdir(self.path) and os.listdir(self.path) and not overwrite:
      error = (
          f'run directory {self.path} already exists; pass --overwrite to replace it or '
          f'choose another --workdir.'
      )
    self._agree(error)
    self.resuming = os.path.isfile(os.path.join(self.staging, 'config.json'))
    if not self.writer:
      self.staging = tempfile.mkdtemp(prefix='manifold_dynamics-process-')
      self.resuming = False  # process 0 resumes and broadcasts (train.fit)
      return
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    os.makedirs(self.staging, exist_ok=True)

  def begin(self, config: dict):
    """Writes config.json; when resuming, refuses a config that differs from the one already
    there (the environment aside), unless --overwrite, which starts the run afresh."""
    error = None  # a different config restarts a run that has trained nothing yet
    if self.writer and self.resuming:
      old = read_json(self.file('config.json'))
      difference = _first_difference(
          {k: v for k, v in strict_json(config).items() if k not in _NOT_COMPARED},
          {k: v for k, v in old.items() if k not in _NOT_COMPARED},
      )
      if difference and (self.overwrite or not _trained_anything(self.staging)):
        shutil.rmtree(self.staging)
        os.makedirs(self.staging)
        self.resuming = False
      elif difference:
        error = (
            f'{self.staging} holds an unfinished run with {difference}; rerun with its '
            f'settings to resume it, or pass --overwrite to discard it.'
        )
    self._agree(error)
    if self.resuming:
      config = dict(config, resumed_by=config.get('environment'))
      config['environment'] = read_json(self.file('config.json')).get('environment')
    write_json(self.file('config.json'), config)

  def _agree(self, error: Optional[str]):
    """Raises `error` on process 0, and a pointer to it on the others."""
    if self.processes.any_process(error is not None and self.writer):
      raise UserError(error or 'process 0 refused the run directory; see its message.')

  def file(self, name: str) -> str:
    """Path of `name` inside the (staging) directory being written."""
    return os.path.join(self.staging, name)

  def history_store(self, name: str, train_indices: np.ndarray):
    """The streamed, resumable store of training `name` (a directory in the run); on the
    processes other than 0 of a multi-host run, a store that keeps nothing."""
    if not self.writer:
      return store.NullStore()
    return store.HistoryStore(self.file(name), train_indices)

  def commit(self) -> str:
    """Moves the finished run into place, replacing an earlier run only now."""
    if not self.writer:
      shutil.rmtree(self.staging, ignore_errors=True)
      return self.path
    old = None
    if os.path.exists(self.path):
      old = f'{self.staging}.replaced'
      os.replace(self.path, old)
    os.replace(self.staging, self.path)
    if old:
      shutil.rmtree(old)
    return self.path


def _trained_anything(staging: str) -> bool:
  """Whether an unfinished run holds a checkpoint of any training (store.HistoryStore)."""
  return any(store.CHECKPOINT in files for _, _, files in os.walk(staging))


def _first_difference(new, old, prefix='') -> Optional[str]:
  """'key a.b: new vs old' for the first setting that differs, or None."""
  if isinstance(new, dict) and isinstance(old, dict):
    for key in list(new) + [k for k in old if k not in new]:
      found = _first_difference(new.get(key), old.get(key), f'{prefix}{key}.')
      if found:
        return found
    return None
  return None if new == old else f'{prefix[:-1]} = {old!r} (now {new!r})'


def save_history(path: str, history: History, train_indices: np.ndarray) -> str:
  return write_npz(
      path,
      **history.arrays(),
      num_examples=np.int64(history.num_examples),
      train_indices=np.asarray(train_indices, np.int64),
  )


def load_history(path: str) -> History:
  """A history written by `save_history` (.npz) or streamed by `store.HistoryStore` (a
  directory, memory-mapped; a training still running gives its epochs so far)."""
  if os.path.isdir(path):
    return store.read_history(path)
  with np.load(path) as f:
    names = History.ARRAYS + History.MULTICLASS_ARRAYS + History.LAYER_ARRAYS + ('mistakes_packed',)
    arrays = dict(R_plus=None, R_minus=None, D=None)
    arrays.update({k: f[k] for k in names if k in f})
    return History(**arrays, num_examples=int(f['num_examples']))


def history_path(run_path: str, name: str = 'history') -> str:
  """The history `name` of a run directory: the streamed directory NAME, or NAME.npz as runs
  written before streaming have it."""
  streamed = os.path.join(run_path, name)
  return streamed if os.path.isdir(streamed) else f'{streamed}.npz'


def load_train_indices(path: str) -> np.ndarray:
  if os.path.isdir(path):
    return np.load(os.path.join(path, 'train_indices.npy'))
  with np.load(path) as f:
    return f['train_indices']


def save_stragglers(
    path: str, sets: List[np.ndarray], train_indices: np.ndarray, t_star: np.ndarray
) -> str:
  offsets = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
  indices = np.concatenate(sets).astype(np.int64) if sets else np.zeros(0, np.int64)
  return write_npz(
      path,
      indices=indices,
      split_indices=np.asarray(train_indices)[indices],
      offsets=offsets,
      t_star=np.asarray(t_star, np.int64),
  )


def load_stragglers(path: str, split: bool = False) -> List[np.ndarray]:
  """S(t*) per seed, as indices into the training slice (or the train split if `split`)."""
  with np.load(path) as f:
    values, offsets = f['split_indices' if split else 'indices'], f['offsets']
  return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def save_scores(
    path: str, columns: Dict[str, np.ndarray], train_indices: np.ndarray, score_epochs
) -> str:
  """Per-example scores, each (seeds, P) in the order of the training slice (difficulty.py)."""
  return write_npz(
      path,
      **columns,
      train_indices=np.asarray(train_indices, np.int64),
      score_epochs=np.asarray(score_epochs, np.int64),
  )


def load_scores(path: str) -> Dict[str, np.ndarray]:
  """The score columns of a scores.npz (without its train_indices and score_epochs)."""
  with np.load(path) as f:
    return {k: f[k] for k in f.files if k not in ('train_indices', 'score_epochs')}


class Run(NamedTuple):
  """Everything a finished run directory holds (figures aside)."""

  path: str
  config: dict
  history: History
  summary: Optional[dict]
  train_indices: np.ndarray


def load_run(path: str) -> Run:
  """Reads a run directory written by an experiment; NAME.partial, a run still training or
  interrupted, gives what it holds so far."""
  if not os.path.isfile(os.path.join(path, 'config.json')):
    raise UserError(f'{path} is not a run directory (no config.json).')
  history = history_path(path)
  if not os.path.exists(history):
    raise UserError(f'{path} holds no history yet; wait for its first chunk of epochs.')
  summary_path = os.path.join(path, 'summary.json')
  return Run(
      path,
      read_json(os.path.join(path, 'config.json')),
      load_history(history),
      read_json(summary_path) if os.path.exists(summary_path) else None,
      load_train_indices(history),
  )
