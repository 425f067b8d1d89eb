"""Checkpoints of the training state: plain arrays in one .npz, written atomically.

The state of a seed-parallel run (`train.RunState` with a leading seed axis: parameters,
optimiser state, step, example weights, standardiser) is a few MB even at 100 seeds, and it is
written once per chunk (every ~20 s). A flat .npz of host arrays keyed by their pytree paths is
all that needs: the arrays come back bit for bit with their dtypes, the file is replaced
atomically (temp file + rename) so a kill mid-write leaves the previous checkpoint intact, it
is readable with NumPy alone, and it adds no dependency. orbax earns its place with sharded
checkpoints of large models written asynchronously by many hosts; here process 0 gathers the
state (`distributed.gather`) and writes it, and `restore` checks every path, shape and dtype
against the state the run was started with, so a checkpoint of a different model is refused.
"""

import os

import numpy as np

from manifold_dynamics.errors import UserError

_META = '__meta__'


def _leaves(tree):
  """{path string: leaf} of a pytree, in its flattening order."""
  import jax  # a checkpoint is a pytree of the engine's state: only training gets here

  return {
      jax.tree_util.keystr(path): leaf
      for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def save(path: str, state, **meta: int) -> str:
  """Writes the host arrays of `state` and integer `meta` (e.g. epochs done) to `path`."""
  arrays = {name: np.asarray(leaf) for name, leaf in _leaves(state).items()}
  if _META in arrays:
    raise ValueError(f'a state leaf is named {_META}')
  names = sorted(meta)
  arrays[_META] = np.array([meta[k] for k in names], np.int64)
  arrays[_META + 'names'] = np.array(names)
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    with open(tmp, 'wb') as f:
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def restore(path: str, like):
  """(state, meta): the arrays of `path` in the structure of `like` (arrays or
  jax.ShapeDtypeStruct), which must have the same leaf paths, shapes and dtypes."""
  try:
    with np.load(path) as f:
      stored = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError) as e:
    raise UserError(
        f'checkpoint {path} is unreadable ({e}); delete it to restart that '
        f'training from epoch 0.'
    ) from None
  meta = dict(zip(stored.pop(_META + 'names').tolist(), stored.pop(_META).tolist()))
  expected = _leaves(like)
  if set(stored) != set(expected):
    raise UserError(
        f'checkpoint {path} holds a different model state; delete it to restart '
        f'that training from epoch 0.'
    )
  for name, leaf in expected.items():  # leaves: arrays or jax.ShapeDtypeStruct
    shape, dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
    if stored[name].shape != shape or stored[name].dtype != dtype:
      raise UserError(
          f'checkpoint {path} holds {name} as {stored[name].dtype}'
          f'{list(stored[name].shape)}, the run expects {dtype}{list(shape)}; '
          f'delete it to restart that training from epoch 0.'
      )
  import jax

  treedef = jax.tree_util.tree_structure(like)
  return jax.tree_util.tree_unflatten(treedef, [stored[k] for k in expected]), meta
