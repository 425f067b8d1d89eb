r"""What recording the example-difficulty scores costs (run by hand; never part of the tests).

    python benchmarks/scores.py                  # 100 seeds, MNIST defaults, ~3 min on 2 CPUs

Prepares the default configuration (MNIST, P = 8192, 2 x 20 tanh, SGD, --seeds seeds) as `fit`
does and compiles one chunk of --epochs epochs three ways: no scores; every score accumulated
but no el2n/grand epoch inside the chunk (the cost of every epoch of a run); and every score
with an el2n/grand epoch inside the chunk (one extra backward pass for GraNd, once per score
epoch). The three are timed alternately, --repeats rounds, best of each, in one process, so the
ratios are side by side. Also reports the bytes of the scan carry with and without scores.
Results are printed and written as JSON to --output.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags, logging

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.engine.train import TrainData, make_train, start

flags.DEFINE_integer('seeds', 100, 'Seeds trained in parallel.')
flags.DEFINE_integer('epochs', 16, 'Epochs per timed chunk.')
flags.DEFINE_integer('repeats', 5, 'Alternating rounds (best of each variant is kept).')
flags.DEFINE_integer('train_size', 8192, 'P.')
flags.DEFINE_string('output', None, 'Write the results as JSON here.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # not JAX's INFO line about a missing TPU
  data = TrainData.from_task(load_task(DataConfig(train_size=FLAGS.train_size)))
  base = TrainConfig(seeds=FLAGS.seeds, epochs=FLAGS.epochs)
  variants = {
      'no scores': base,
      'all scores, no score epoch in the chunk': TrainConfig(
          seeds=FLAGS.seeds, epochs=FLAGS.epochs + 1, scores=('all',), score_epochs=(FLAGS.epochs,)
      ),
      'all scores, one score epoch in the chunk': TrainConfig(
          seeds=FLAGS.seeds, epochs=FLAGS.epochs, scores=('all',), score_epochs=(0,)
      ),
  }
  compiled = {}
  for name, cfg in variants.items():
    state, prepared = start(cfg, data)
    run = jax.jit(
        jax.vmap(make_train(cfg, prepared).run_epochs, in_axes=(0, None, None)), static_argnums=2
    )
    fn = run.lower(state, prepared, FLAGS.epochs).compile()
    jax.block_until_ready(fn(state, prepared))
    carry = sum(x.nbytes for x in jax.tree.leaves(state))
    compiled[name] = (fn, state, prepared, carry)
  best = {name: np.inf for name in variants}
  for _ in range(FLAGS.repeats):
    for name, (fn, state, prepared, _) in compiled.items():
      tic = time.perf_counter()
      jax.block_until_ready(fn(state, prepared))
      best[name] = min(best[name], time.perf_counter() - tic)
  reference = best['no scores']
  results = {'backend': jax.default_backend(), 'seeds': FLAGS.seeds, 'epochs': FLAGS.epochs}
  results['variants'] = []
  for name, seconds in best.items():
    row = {
        'variant': name,
        'seconds_per_chunk': seconds,
        'seed_epochs_per_s': FLAGS.seeds * FLAGS.epochs / seconds,
        'time_ratio': seconds / reference,
        'carry_mb': compiled[name][3] / 1e6,
    }
    results['variants'].append(row)
    print(
        f'{name:42s}: {row["seed_epochs_per_s"]:8.1f} seed-epochs/s, x{row["time_ratio"]:.3f} '
        f'the time of no scores; scan carry {row["carry_mb"]:.1f} MB'
    )
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  app.run(main)
