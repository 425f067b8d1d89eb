r"""Throughput and memory of the training engine (run by hand; never part of the tests).

    python benchmarks/throughput.py                       # 1, 10, 100 seeds + memory run
    python benchmarks/throughput.py --memory_epochs=0     # throughput only (~3 min on 2 CPUs)

For each seed count it compiles one chunk of --epochs epochs of the default configuration
(MNIST, P = 8192, 2 x 20 tanh, SGD), times it (best of --repeats), and reports seed-epochs per
second and the FLOP rate implied by XLA's own FLOP count of one compiled epoch. In the same
process it times a plain jitted float32 matmul of comparable size, P x N times N x (100 H),
and its transpose product (the shapes of the first layer's forward and weight gradient for 100
seeds): the machine's practical peak. Finally, unless --memory_epochs=0, a child process runs
`fit` for --memory_seeds x --memory_epochs (the default run) and its peak resident memory is
read from the kernel (the child's own VmHWM). Results are printed and written as JSON to --output.
"""

import json
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list('seeds', ['1', '10', '100'], 'Seed counts to time.')
flags.DEFINE_integer('epochs', 16, 'Epochs per timed chunk.')
flags.DEFINE_integer('repeats', 3, 'Timed repetitions (best is kept).')
flags.DEFINE_integer('train_size', 8192, 'P.')
flags.DEFINE_integer('memory_seeds', 100, 'Seeds of the memory run.')
flags.DEFINE_integer('memory_epochs', 1000, 'Epochs of the memory run (0 = skip).')
flags.DEFINE_string('output', None, 'Write the results as JSON here.')
flags.DEFINE_bool('memory_child', False, 'Internal: be the memory-run child.')
FLAGS = flags.FLAGS


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost['flops'])


def _best_time(fn, repeats: int) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn())
  best = float('inf')
  for _ in range(repeats):
    tic = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - tic)
  return best


def _task():
  from manifold_dynamics.config import DataConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.data import load_task  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.train import TrainData  # pylint: disable=g-import-not-at-top
  return TrainData.from_task(load_task(DataConfig(train_size=FLAGS.train_size)))


def memory_child():
  from manifold_dynamics.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.train import fit  # pylint: disable=g-import-not-at-top
  tic = time.perf_counter()
  history = fit(TrainConfig(seeds=FLAGS.memory_seeds, epochs=FLAGS.memory_epochs), _task(),
                log=lambda line: print(line, file=sys.stderr, flush=True))
  with open('/proc/self/status') as f:  # VmHWM: this process's own peak, reset at exec
    hwm_kib = int(next(l for l in f if l.startswith('VmHWM:')).split()[1])
  print(json.dumps({'seconds': time.perf_counter() - tic, 'peak_rss_bytes': hwm_kib * 1024,
                    'history_bytes': int(sum(getattr(history, k).nbytes for k in
                                             history.ARRAYS) + history.mistakes_packed.nbytes)}))


def main(argv):
  del argv
  if FLAGS.memory_child:
    return memory_child()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.train import make_train, seed_keys  # pylint: disable=g-import-not-at-top

  data = _task()
  P, N = data.x_train.shape
  results = {'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()],
             'train_size': P, 'epochs_per_chunk': FLAGS.epochs, 'engine': []}
  width = TrainConfig().width
  for seeds in map(int, FLAGS.seeds):
    cfg = TrainConfig(seeds=seeds, epochs=FLAGS.epochs)
    trainer = make_train(cfg)
    # Shared weights, as fit passes them: one standardiser, not one (P, N) temporary per seed.
    state = jax.jit(jax.vmap(trainer.init, in_axes=(0, None, None)))(
        seed_keys(0, seeds), data, jnp.ones(P, jnp.float32))
    run = jax.jit(jax.vmap(trainer.run_epochs, in_axes=(0, None, None)), static_argnums=2)
    compiled = run.lower(state, data, FLAGS.epochs).compile()
    seconds = _best_time(lambda: compiled(state, data), FLAGS.repeats)
    # XLA counts a loop body once, whatever its trip count: count a one-epoch chunk.
    flops_per_epoch = _flops(run.lower(state, data, 1).compile())
    row = {'seeds': seeds, 'seconds_per_chunk': seconds,
           'seed_epochs_per_s': seeds * FLAGS.epochs / seconds,
           'flops_per_seed_epoch': flops_per_epoch / seeds,
           'gflop_per_s': flops_per_epoch * FLAGS.epochs / seconds / 1e9}
    results['engine'].append(row)
    print(f'{seeds:4d} seeds: {row["seed_epochs_per_s"]:9.1f} seed-epochs/s  '
          f'{row["gflop_per_s"]:6.1f} GFLOP/s  ({row["flops_per_seed_epoch"] / 1e6:.0f} MFLOP '
          f'per seed-epoch)', flush=True)

  cols = width * max(map(int, FLAGS.seeds))
  x = jax.random.normal(jax.random.PRNGKey(0), (P, N))
  w = jax.random.normal(jax.random.PRNGKey(1), (N, cols))
  d = jax.random.normal(jax.random.PRNGKey(2), (P, cols))
  fwd = jax.jit(lambda x, w: x @ w)
  grad = jax.jit(lambda x, d: x.T @ d)
  peaks = {
      f'x({P}x{N}) @ w({N}x{cols})': 2 * P * N * cols / _best_time(lambda: fwd(x, w), 5) / 1e9,
      f'x.T({N}x{P}) @ d({P}x{cols})': 2 * P * N * cols / _best_time(lambda: grad(x, d), 5) / 1e9,
  }
  peak = max(peaks.values())
  results['matmul_gflop_per_s'] = peaks
  results['peak_gflop_per_s'] = peak
  for name, rate in peaks.items():
    print(f'matmul {name}: {rate:6.1f} GFLOP/s')
  for row in results['engine']:
    row['fraction_of_peak'] = row['gflop_per_s'] / peak
    print(f'{row["seeds"]:4d} seeds: {row["fraction_of_peak"]:.0%} of the matmul peak')

  if FLAGS.memory_epochs:
    del x, w, d
    child = subprocess.run(
        [sys.executable, __file__, '--memory_child', f'--memory_seeds={FLAGS.memory_seeds}',
         f'--memory_epochs={FLAGS.memory_epochs}', f'--train_size={FLAGS.train_size}'],
        check=True, stdout=subprocess.PIPE, text=True)
    # Not ru_maxrss of RUSAGE_CHILDREN: Linux carries the forked parent's RSS over the exec.
    results['memory_run'] = dict(json.loads(child.stdout.strip().splitlines()[-1]),
                                 seeds=FLAGS.memory_seeds, epochs=FLAGS.memory_epochs)
    peak_rss = results['memory_run']['peak_rss_bytes']
    print(f'memory run {FLAGS.memory_seeds} seeds x {FLAGS.memory_epochs} epochs: peak RSS '
          f'{peak_rss / 2**30:.2f} GiB, {results["memory_run"]["seconds"]:.0f} s')
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
