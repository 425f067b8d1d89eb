"""Where `train.fit` puts the records of each chunk: in memory, or streamed to a directory
together with a checkpoint of the training state, so that a long run holds no history in
host memory, can be read while it trains, and resumes after an interruption.

A streamed history is a directory (`history/` in a run directory):
  R_plus.npy ... test_error.npy   (epochs, seeds) float32, EPOCH-MAJOR: each chunk is
                                  appended to the end of the file;
  mistakes_packed.npy             (epochs, seeds, ceil(P / 8)) uint8;
  layer_R_plus.npy & co.          (epochs, seeds, layers), with --layers other than first;
  R_mean.npy, D_mean.npy          (epochs, seeds) for K > 2 classes instead of R_plus..D, with
  R_class.npy, D_class.npy        (epochs, seeds, K) and (epochs, seeds, K (K - 1) / 2);
  train_indices.npy               (P,) int64, each example's index in the train split;
  progress.json                   num_examples, epochs_written (records on disk, epoch 0
                                  first), epochs_trained (updates done), status
                                  ('training', 'complete', 'diverged'), chunk (epochs per
                                  chunk, reused on resume so chunk boundaries do not move);
  checkpoint.npz                  the state after epochs_trained updates (`checkpoint`).
Every .npy is a valid NumPy file at every moment (its header is rewritten after each append);
`progress.json` is written last, atomically, and is what readers trust: a file may hold a
partly appended chunk beyond epochs_written, never less. `read_history` memory-maps the arrays
and returns a `History` whose arrays are (seeds, epochs, ...) views, so reading a 15 GB
history costs no memory until a slice of it is used.
"""

import json
import os
from typing import Optional

import numpy as np

from manifold_dynamics.errors import UserError
from manifold_dynamics.records import checkpoint
from manifold_dynamics.records.history import History, Resumed, record_arrays

PROGRESS = 'progress.json'
CHECKPOINT = 'checkpoint.npz'
_HEADER_BYTES = 256  # fixed .npy header (version 1.0), so appending never moves the data


def _npy_header(dtype: np.dtype, shape) -> bytes:
  text = repr(
      {
          'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)),
          'fortran_order': False,
          'shape': tuple(int(s) for s in shape),
      }
  )
  prefix = np.lib.format.MAGIC_PREFIX + bytes([1, 0])
  pad = _HEADER_BYTES - len(prefix) - 2 - len(text) - 1
  if pad < 0:
    raise ValueError(f'shape {shape} does not fit a {_HEADER_BYTES}-byte .npy header')
  header = (text + ' ' * pad + '\n').encode('latin1')
  return prefix + len(header).to_bytes(2, 'little') + header


class _AppendableArray:
  """A .npy file that grows along its first axis."""

  def __init__(self, path: str):
    self.path = path

  def create(self, dtype, row_shape):
    with open(self.path, 'wb') as f:
      f.write(_npy_header(dtype, (0,) + tuple(row_shape)))

  def _layout(self):
    array = np.load(self.path, mmap_mode='r')
    return array.dtype, array.shape[1:]

  def append(self, rows: np.ndarray, at: int):
    """Writes `rows` as rows at..at+len(rows) and sets the header's length to match."""
    dtype, row_shape = self._layout()
    rows = np.ascontiguousarray(rows, dtype)
    if rows.shape[1:] != row_shape:
      raise ValueError(f'{self.path}: rows of shape {rows.shape[1:]}, file has {row_shape}')
    row_bytes = dtype.itemsize * int(np.prod(row_shape))
    with open(self.path, 'r+b') as f:
      f.seek(_HEADER_BYTES + at * row_bytes)
      f.write(rows.tobytes())
      f.truncate()
      f.seek(0)
      f.write(_npy_header(dtype, (at + len(rows),) + row_shape))
      f.flush()
      os.fsync(f.fileno())

  def truncate(self, length: int):
    dtype, row_shape = self._layout()
    row_bytes = dtype.itemsize * int(np.prod(row_shape))
    with open(self.path, 'r+b') as f:
      f.truncate(_HEADER_BYTES + length * row_bytes)
      f.seek(0)
      f.write(_npy_header(dtype, (length,) + row_shape))


def _array_names(records) -> dict:
  """{file name: (seeds, n, ...) array} of a host EpochRecord chunk (see train.EpochRecord)."""
  return {k: v for k, v in record_arrays(records).items() if v is not None}


def read_progress(path: str) -> Optional[dict]:
  progress_path = os.path.join(path, PROGRESS)
  if not os.path.isfile(progress_path):
    return None
  with open(progress_path) as f:
    return json.load(f)


def read_history(path: str) -> History:
  """The History streamed to directory `path` so far (memory-mapped, read-only); a run still
  training gives the epochs written until now."""
  progress = read_progress(path)
  if progress is None:
    raise UserError(f'{path} is not a streamed history (no {PROGRESS}).')
  n = progress['epochs_written']
  arrays = {}
  arrays.update(R_plus=None, R_minus=None, D=None)  # absent for K > 2 classes
  for name in (
      History.ARRAYS + History.MULTICLASS_ARRAYS + History.LAYER_ARRAYS + ('mistakes_packed',)
  ):
    file = os.path.join(path, f'{name}.npy')
    if os.path.exists(file):
      arrays[name] = np.moveaxis(np.load(file, mmap_mode='r')[:n], 0, 1)
  return History(**arrays, num_examples=progress['num_examples'])


class HistoryStore:
  """Streams the records of `train.fit` to directory `path` and checkpoints its state there
  (the format is the module docstring's). A `path` that already holds progress is resumed:
  `resume` hands `fit` the checkpointed state and the history is cut back to it.
  """

  def __init__(self, path: str, train_indices: np.ndarray):
    self.path = path
    self.train_indices = np.asarray(train_indices, np.int64)
    self.progress = read_progress(path) or {
        'num_examples': len(self.train_indices),
        'epochs_written': 0,
        'epochs_trained': 0,
        'status': 'training',
        'chunk': None,
    }
    self._arrays = None  # name -> _AppendableArray, once the first chunk fixed the layout

  @property
  def complete(self) -> bool:
    return self.progress['status'] == 'complete'

  def _write_progress(self, **changes):
    self.progress.update(changes)
    tmp = os.path.join(self.path, f'{PROGRESS}.tmp-{os.getpid()}')
    with open(tmp, 'w') as f:
      json.dump(self.progress, f, indent=2)
      f.write('\n')
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, os.path.join(self.path, PROGRESS))

  # --- the protocol train.fit uses (see train.MemoryStore) ----------------------------------

  def resume(self, state) -> Optional[Resumed]:
    """The checkpointed state (in the structure of `state`, host arrays), the epochs trained,
    the chunk length and the history so far; None when this store is new."""
    if self.progress['status'] == 'diverged':
      raise UserError(
          f'the training in {self.path} diverged at epoch '
          f'{self.progress["epochs_written"]}; lower --lr and pass --overwrite to '
          f'start again.'
      )
    ckpt = os.path.join(self.path, CHECKPOINT)
    if not os.path.isfile(ckpt):
      return None
    state, meta = checkpoint.restore(ckpt, state)
    epochs = meta['epochs_trained']
    if not self.complete:
      if self.progress['epochs_written'] < epochs:
        raise UserError(
            f'{self.path}: its history stops at epoch '
            f'{self.progress["epochs_written"]}, before its checkpoint ({epochs}); '
            f'delete {ckpt} to restart that training from epoch 0.'
        )
      for array in self._open().values():  # drop records past it (a chunk cut by a kill)
        array.truncate(epochs)
      self._write_progress(epochs_written=epochs, epochs_trained=epochs)
    history = read_history(self.path)
    observables = {
        k: np.asarray(getattr(history, k)) for k in history.observables + ('loss', 'train_error')
    }
    return Resumed(state, epochs, self.progress['chunk'], observables, self.complete)

  def _open(self):
    if self._arrays is None:
      names = [
          f[:-4]
          for f in sorted(os.listdir(self.path))
          if f.endswith('.npy') and f != 'train_indices.npy'
      ]
      self._arrays = {k: _AppendableArray(os.path.join(self.path, f'{k}.npy')) for k in names}
    return self._arrays

  def append(self, records):
    """Appends a host EpochRecord chunk, arrays (seeds, n, ...), as epochs on disk."""
    self._append(_array_names(records))

  def _append(self, arrays: dict):
    if self.progress['epochs_written'] == 0:
      os.makedirs(self.path, exist_ok=True)
      np.save(os.path.join(self.path, 'train_indices.npy'), self.train_indices)
      self._arrays = {}
      for name, value in arrays.items():
        self._arrays[name] = _AppendableArray(os.path.join(self.path, f'{name}.npy'))
        self._arrays[name].create(value.dtype, (value.shape[0],) + value.shape[2:])
    at = self.progress['epochs_written']
    for name, array in self._open().items():
      array.append(np.moveaxis(arrays[name], 1, 0), at)
    n = next(iter(arrays.values())).shape[1]
    self._write_progress(epochs_written=at + n)

  def checkpoint(self, state, epochs_trained: int, chunk: int):
    """Saves `state` (host arrays) as the state after `epochs_trained` updates."""
    checkpoint.save(os.path.join(self.path, CHECKPOINT), state, epochs_trained=epochs_trained)
    self._write_progress(epochs_trained=epochs_trained, chunk=chunk)

  def finish(self, final, state, epochs_trained: int):
    """Appends the final observation (records of one epoch, (seeds, ...)) and marks the
    history complete; the final state stays checkpointed (a rerun returns it untrained)."""
    self._append({k: v[:, None] for k, v in _array_names(final).items()})
    self.checkpoint(state, epochs_trained, self.progress['chunk'])
    self._write_progress(status='complete')

  def diverged(self):
    self._write_progress(status='diverged')

  def history(self) -> History:
    return read_history(self.path)


class NullStore:
  """The store of the processes other than 0 in a multi-host run: they train their share of
  the seeds and take the same decisions between chunks from the gathered records, but keep
  and write nothing (process 0 streams the run; `fit` returns no history here)."""

  def resume(self, like):
    del like
    return None

  def append(self, records):
    pass

  def checkpoint(self, state, epochs_trained: int, chunk: int):
    pass

  def finish(self, final, state, epochs_trained: int):
    pass

  def diverged(self):
    pass

  def history(self):
    return None
