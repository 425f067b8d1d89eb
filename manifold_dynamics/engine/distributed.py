"""One run on several hosts, with JAX's own runtime (`jax.distributed`).

Launched as several processes (a TPU pod slice: one per host; SLURM: one per node; or by hand
with --coordinator_address, --num_processes, --process_id), every process calls `initialize`
before touching JAX; `jax.devices()` is then the global list of devices, `train.fit` shards the
seed axis over all of them, every host trains its share, the records of each chunk are
gathered to every process (`gather`), and only process 0 (`is_writer`) writes the run
directory. Decisions between chunks (stop, resume, interruption) are taken identically on
every process from the same gathered records, or taken on process 0 and broadcast
(`broadcast`, `any_process`), so no process waits for a collective the others skip.

With one process every function here is a no-op or a plain `jax.device_get`.
"""

from typing import Optional

import jax
import numpy as np
from jax.experimental import multihost_utils


def initialize(
    coordinator_address: Optional[str] = None,
    num_processes: Optional[int] = None,
    process_id: Optional[int] = None,
):
  """Joins the processes of one run; call it before any other JAX call. Without arguments
  JAX detects the cluster (TPU pod, SLURM, Open MPI, Kubernetes). Cross-process collectives
  between CPU devices use gloo (the setting is ignored by accelerators)."""
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_writer() -> bool:
  """Whether this process writes files (process 0)."""
  return jax.process_index() == 0


def multi_process() -> bool:
  return jax.process_count() > 1


def put(x, sharding: jax.sharding.Sharding) -> jax.Array:
  """The host array `x`, identical on every process, placed with `sharding` over the global
  devices (each process supplies the shards of its own devices)."""
  if not multi_process():
    return jax.device_put(x, sharding)
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def gather(tree):
  """Host NumPy copies of the arrays of `tree`, whole on every process."""
  if not multi_process():
    return jax.device_get(tree)
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def broadcast(tree):
  """Process 0's values of the host arrays of `tree`, on every process."""
  if not multi_process():
    return tree
  return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on any process."""
  if not multi_process():
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.array(flag, np.int32))))
