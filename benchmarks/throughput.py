r"""Throughput and memory of the training engine (run by hand; never part of the tests).

    python benchmarks/throughput.py                       # 1, 10, 100 seeds + the CNN path
                                                          # (5.4 min on 2 CPUs)
    python benchmarks/throughput.py --memory_epochs=1000  # + the 100-seed run's memory (+8 min)

Runs unchanged on a CPU, GPU or TPU (it prints the device). For each seed count it prepares
the default configuration (MNIST, P = 8192, 2 x 20 tanh, SGD) exactly as `fit` does
(`train.start`: inputs constant on T left out), compiles one chunk of --epochs epochs, times
it (best of --repeats), and reports seed-epochs per second and the FLOP rate implied by XLA's
own FLOP count of one compiled epoch (the work actually done). Three variants per seed count:
the default (test set every epoch, float32 products), the same without the test-set pass
(--test_every=0) and the opt-in bfloat16 products.

Where an epoch goes: the three first-layer products (forward, weight gradient, test forward)
are timed alone at the engine's shapes and layout; with the run without test pass this splits
the default epoch into training products, rest of training (elementwise work over (seeds, H,
P), geometry, loss, optimiser), test product and rest of the test pass.

In the same process it times a plain jitted float32 matmul P x N times N x (100 H) with all
N = 784 inputs, and its transpose product (the first layer's forward and weight gradient for
100 seeds): the machine's practical peak, against which every rate is given. Finally, with
--memory_epochs (0, off, by default: it alone takes longer than the rest on a CPU), a child
process runs `fit` for --memory_seeds x --memory_epochs (1000: the inversion experiment's
default run) and its peak resident memory is read from the kernel (the child's own VmHWM).
Results are printed and written as JSON to --output.

The CNN path (`--cnn_sizes`, empty to skip; `--noengine` for it alone): the
2-block ConvNet (`--model=cnn`) on MNIST at each P:channels of --cnn_sizes (default: the CPU
grid's size, P = 1024 with 8-16 channels, and the full one, P = 8192 with 16-32), a chunk of
--cnn_epochs full-batch epochs vmapped over --cnn_seeds seeds inside the scan, timed with each
convolution of --cnn_impls (`layers.CONVS`: XLA's, the sum of shifted slices, one product of
the windows (im2col), JAX's patches) at each precision of --cnn_precisions; beside one
jitted full-batch update of one seed outside any loop (what the chunk should match). Each row
gives the nominal conv FLOPs per seed-epoch (3 forward passes of the convolutions), the rate
they reach and its fraction of the measured matmul peak of that precision (a 2048 x 2048
product). XLA's convolution inside a scan on a CPU (~20x slower there, jax-ml/jax#12868) is
timed with one seed for one epoch at the first size only, so that it cannot stall the run;
past the first size a CPU times only the convolutions within 2x of the best rate there, and a
call that takes over a second is timed once after its warm-up:

    python benchmarks/throughput.py --noengine     # the CNN path, ~4 min
"""

import collections
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Optional

from absl import app, flags, logging

flags.DEFINE_list('seeds', ['1', '10', '100'], 'Seed counts to time.')
flags.DEFINE_integer('epochs', 16, 'Epochs per timed chunk.')
flags.DEFINE_integer('repeats', 3, 'Timed repetitions (best is kept).')
flags.DEFINE_integer('train_size', 8192, 'P.')
flags.DEFINE_string('data_dir', None, 'Directory of the MNIST files (default: the cache).')
flags.DEFINE_integer('memory_seeds', 100, 'Seeds of the memory run.')
flags.DEFINE_integer(
    'memory_epochs', 0, 'Epochs of the memory run (0 = skip; 1000: the default inversion run).'
)
flags.DEFINE_string('output', None, 'Write the results as JSON here.')
flags.DEFINE_bool('memory_child', False, 'Internal: be the memory-run child.')
flags.DEFINE_bool('engine', True, 'Time the MLP engine (the default run).')
flags.DEFINE_list(
    'cnn_sizes',
    ['1024:8-16', '8192:16-32'],
    "CNN timings, P:channels (the CPU grid's size, and the full one); empty: skip the CNN.",
)
flags.DEFINE_list(
    'cnn_impls', ['shifted', 'im2col', 'patches', 'xla'], 'Convolutions timed (layers.CONVS).'
)
flags.DEFINE_list('cnn_precisions', ['float32', 'bfloat16'], 'Matmul precisions timed.')
flags.DEFINE_integer('cnn_seeds', 2, 'Seeds of each CNN timing (XLA on a CPU: 1).')
flags.DEFINE_integer('cnn_epochs', 2, 'Epochs per timed CNN chunk (XLA on a CPU: 1).')
FLAGS = flags.FLAGS
# (test_every, matmul_precision) timed at every seed count: the default run, the same without
# the test-set pass, and the opt-in bfloat16 products.
_VARIANTS = ((1, 'float32'), (0, 'float32'), (1, 'bfloat16'))


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost['flops'])


def _best_time(fn, repeats: int, long_s: Optional[float] = None) -> float:
  """Best of `repeats` timed calls after a warm-up call; one timed call only when the
  warm-up took over `long_s` seconds (a long call is its own average)."""
  import jax  # pylint: disable=g-import-not-at-top

  tic = time.perf_counter()
  jax.block_until_ready(fn())
  if long_s is not None and time.perf_counter() - tic > long_s:
    repeats = 1
  best = float('inf')
  for _ in range(repeats):
    tic = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - tic)
  return best


def _first_layer_ops(hlo: str, num_inputs: int) -> set:
  """Names of the ops of an optimised HLO module that compute a first-layer product: a fusion
  calling a computation with a dot and an array of `num_inputs` (the input columns used) as
  one of its dimensions, or an unfused dot with such an output."""
  with_inputs = re.compile(rf'[\[,]{num_inputs}[\],]')
  bodies, current = {}, None
  for line in hlo.splitlines():
    header = re.match(r'^(?:ENTRY )?%(\S+) .*\{$', line)
    if header:
      current = bodies.setdefault(header.group(1), [])
    elif current is not None:
      current.append(line)
  # Operand shapes are printed on the parameter lines of a fused computation, not on its dot.
  has_product = {
      name
      for name, lines in bodies.items()
      if any(' dot(' in line for line in lines) and any(with_inputs.search(line) for line in lines)
  }
  ops = set()
  for line in hlo.splitlines():
    op = re.match(r'^\s*(?:ROOT )?%(\S+) = ', line)
    called = re.search(r'calls=%([\w.\-]+)', line)
    if op and (
        (called and called.group(1) in has_product)
        or (' dot(' in line and with_inputs.search(line))
    ):
      ops.add(op.group(1))
  return ops


def _op_profile(compiled, args, num_inputs: int) -> Optional[dict]:
  """Seconds of one call spent in the first-layer products and in all other ops of the
  module, from a profiler trace (XLA's own per-op events); None where the trace has no op
  events this can attribute (e.g. an accelerator whose kernels carry other names)."""
  import jax  # pylint: disable=g-import-not-at-top

  hlo = compiled.as_text()
  products = _first_layer_ops(hlo, num_inputs)
  module_ops = set(re.findall(r'^\s*(?:ROOT )?%(\S+) = ', hlo, re.M))
  with tempfile.TemporaryDirectory() as logdir:
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
      jax.block_until_ready(compiled(*args))
    paths = glob.glob(os.path.join(logdir, '**', 'perfetto_trace.json.gz'), recursive=True)
    if not paths:
      return None
    with gzip.open(paths[0]) as f:
      events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  seconds = collections.Counter()
  for e in events:  # op events only, not the executor's own spans
    if e.get('ph') == 'X' and e.get('name') in module_ops and 'dur' in e:
      seconds[e['name']] += e['dur'] * 1e-6
  in_products = sum(t for name, t in seconds.items() if name in products)
  if not in_products:
    return None
  return {
      'first_layer_products': in_products,
      'other_ops': sum(t for name, t in seconds.items() if name not in products),
      'largest_ops': [
          {
              'op': name,
              'seconds': t,
              'first_layer_product': name in products,
              'shape': re.search(rf'%{re.escape(name)} = (\S+)', hlo).group(1),
          }
          for name, t in seconds.most_common(12)
      ],
  }


def _profile(rows) -> list:
  """Where the default epoch goes, per seed count: the shares of the first-layer products
  (forward, weight gradient, test forward) and of all other ops in XLA's own trace, and the
  share of the test-set pass (the default run against the run without it)."""
  out = []
  for row in rows:
    if not row.get('op_seconds_per_chunk'):
      continue
    no_test = next(
        r
        for r in rows
        if r['seeds'] == row['seeds']
        and r['test_every'] == 0
        and r['matmul_precision'] == 'float32'
    )
    ops = row['op_seconds_per_chunk']
    traced = ops['first_layer_products'] + ops['other_ops']
    out.append(
        {
            'seeds': row['seeds'],
            'epoch_seconds': row['seconds_per_chunk'] / FLAGS.epochs,
            'first_layer_products': ops['first_layer_products'] / traced,
            'other_ops': ops['other_ops'] / traced,
            'test_pass': 1 - no_test['seconds_per_chunk'] / row['seconds_per_chunk'],
        }
    )
  return out


def _task():
  from manifold_dynamics.config import DataConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.data import load_task  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.engine.state import TrainData  # pylint: disable=g-import-not-at-top

  return TrainData.from_task(
      load_task(DataConfig(train_size=FLAGS.train_size, data_dir=FLAGS.data_dir))
  )


def _conv_flops(channels, width, image, num_outputs=2) -> dict:
  """Nominal FLOPs of one example of the CNN (3x3 'SAME' convs, 2x2 pools, a dense layer of
  `width`): {'conv_forward', 'dense_forward'}; an epoch of training is about 3 forward passes
  (forward, the gradient of the inputs, the gradient of the weights)."""
  (H, W, C), conv = image, 0.0
  for c in channels:
    conv += 2 * H * W * 9 * C * c
    H, W, C = -(-H // 2), -(-W // 2), c
  dense = 2 * (H * W * C * width + width * num_outputs)
  return {'conv_forward': conv, 'dense_forward': dense}


def _matmul_peaks() -> dict:
  """GFLOP/s of a large jitted square matrix product in float32 (full precision) and in
  bfloat16 (float32 accumulation): this machine's practical peak for each."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  n = 2048
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n))
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n))
  f32 = jax.jit(lambda a, b: jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST))
  bf16 = jax.jit(
      lambda a, b: jnp.dot(
          a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32
      )
  )
  return {
      'float32': 2 * n**3 / _best_time(lambda: f32(a, b), 5) / 1e9,
      'bfloat16': 2 * n**3 / _best_time(lambda: bf16(a, b), 5) / 1e9,
  }


def _contenders(rows: list) -> set:
  """The convolutions whose in-scan rate at the first size is within 2x of the best there."""
  first = [r for r in rows if r['train_size'] == rows[0]['train_size']] if rows else []
  best = max((r['in_scan_seed_epochs_per_s'] for r in first), default=0.0)
  return {r['conv'] for r in first if 2 * r['in_scan_seed_epochs_per_s'] >= best}


def cnn_throughput(peaks: dict) -> list:
  """The CNN path (module docstring): per size, convolution and precision, seed-epochs per
  second inside the scan, the nominal conv FLOPs per seed-epoch, the rate they reach and its
  fraction of the matmul peak of that precision; and one full-batch update of one seed
  outside any loop, per convolution (the rate the scan should match)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  from manifold_dynamics.config import DataConfig, TrainConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.data import load_task  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.engine.models.cnn import CNN  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.engine.state import TrainData  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.engine.train import make_train, start  # pylint: disable=g-import-not-at-top

  cpu = jax.default_backend() == 'cpu'
  rows = []
  for spec in FLAGS.cnn_sizes:
    size, _, chans = spec.partition(':')
    P, channels = int(size), tuple(int(c) for c in chans.split('-'))
    data = TrainData.from_task(
        load_task(DataConfig(train_size=P, data_dir=FLAGS.data_dir), log=None)
    )
    flops = _conv_flops(channels, 20, data.input_shape)
    for impl in FLAGS.cnn_impls:
      # XLA's convolution inside a scan on a CPU runs ~20x slower (jax-ml/jax#12868): one seed,
      # one epoch, and only at the smallest size, so that it cannot stall the benchmark. Past
      # the first size a CPU times only the convolutions within 2x of the best there.
      slow = cpu and impl == 'xla'
      if cpu and spec != FLAGS.cnn_sizes[0] and impl not in _contenders(rows):
        continue
      for precision in FLAGS.cnn_precisions:
        seeds, epochs = (1, 1) if slow else (int(FLAGS.cnn_seeds), FLAGS.cnn_epochs)
        cfg = TrainConfig(
            model='cnn', model_settings=dict(channels=channels, conv_impl=impl), seeds=seeds,
            epochs=epochs, test_every=0, matmul_precision=precision,
        )  # fmt: skip
        state, prepared = start(cfg, data)
        run = jax.jit(
            jax.vmap(make_train(cfg, prepared).run_epochs, in_axes=(0, None, None)),
            static_argnums=2,
        )
        compiled = run.lower(state, prepared, epochs).compile()
        seconds = _best_time(
            lambda: compiled(state, prepared), 1 if slow else FLAGS.repeats, long_s=1.0
        )
        rate = seeds * epochs / seconds
        conv = 3 * flops['conv_forward'] * P  # per seed-epoch
        row = {
            'train_size': P,
            'channels': list(channels),
            'conv': impl,
            'precision': precision,
            'seeds': seeds,
            'in_scan_seed_epochs_per_s': rate,
            'conv_gflop_per_seed_epoch': conv / 1e9,
            'xla_gflop_per_seed_epoch': (
                _flops(run.lower(state, prepared, 1).compile()) / seeds / 1e9
            ),
            'conv_gflop_per_s': conv * rate / 1e9,
        }
        row['fraction_of_peak'] = row['conv_gflop_per_s'] / peaks[precision]
        rows.append(row)
        print(
            f'cnn P={P} {"-".join(map(str, channels))}, {impl:8s} {precision:8s} {seeds} seeds: '
            f'{rate:7.3g} seed-epochs/s in the scan, {conv / 1e9:6.2f} conv GFLOP per '
            f'seed-epoch, {row["conv_gflop_per_s"]:6.1f} GFLOP/s = {row["fraction_of_peak"]:.1%} '
            f'of the {precision} matmul peak',
            flush=True,
        )
      model = CNN(channels, num_outputs=2, conv_impl=impl)
      x = jnp.asarray(data.x_train).reshape((-1,) + data.input_shape)
      labels = (data.y_train < 0).astype(jnp.int32)
      params = model.init(jax.random.PRNGKey(0), x[:1])['params']

      @jax.jit
      def update(p):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply({'params': p}, x), labels
        ).mean()
        return jax.tree.map(lambda w, g: w - 0.05 * g, p, jax.grad(loss)(p))

      single = 1 / _best_time(lambda: update(params), FLAGS.repeats, long_s=1.0)
      for row in rows:
        if row['conv'] == impl and row['train_size'] == P:
          row['outside_loop_seed_epochs_per_s'] = single
          row['in_scan_over_outside'] = row['in_scan_seed_epochs_per_s'] / single
      print(
          f'cnn P={P}, {impl:8s}: one update of one seed outside any loop: {single:.3g} per s',
          flush=True,
      )
  return rows


def memory_child():
  from manifold_dynamics.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.engine.train import fit  # pylint: disable=g-import-not-at-top

  tic = time.perf_counter()
  history = fit(
      TrainConfig(seeds=FLAGS.memory_seeds, epochs=FLAGS.memory_epochs),
      _task(),
      log=lambda line: print(line, file=sys.stderr, flush=True),
  )
  with open('/proc/self/status') as f:  # VmHWM: this process's own peak, reset at exec
    hwm_kib = int(next(row for row in f if row.startswith('VmHWM:')).split()[1])
  print(
      json.dumps(
          {
              'seconds': time.perf_counter() - tic,
              'peak_rss_bytes': hwm_kib * 1024,
              'history_bytes': int(sum(v.nbytes for v in history.arrays().values())),
          }
      )
  )


def main(argv):
  del argv
  if FLAGS.memory_child:
    return memory_child()
  logging.set_verbosity(logging.WARNING)  # not the profiler's INFO lines about its trace files
  import jax  # pylint: disable=g-import-not-at-top

  from manifold_dynamics.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from manifold_dynamics.engine.train import make_train, start  # pylint: disable=g-import-not-at-top

  data = _task()
  P, N = data.x_train.shape
  print(f'backend {jax.default_backend()}: {", ".join(str(d) for d in jax.devices())}')
  results = {
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
      'train_size': P,
      'epochs_per_chunk': FLAGS.epochs,
      'engine': [],
  }
  for seeds in map(int, FLAGS.seeds if FLAGS.engine else []):
    for test_every, precision in _VARIANTS:
      cfg = TrainConfig(
          seeds=seeds, epochs=FLAGS.epochs, test_every=test_every, matmul_precision=precision
      )
      state, prepared = start(cfg, data)  # as fit trains: constant inputs left out
      run = jax.jit(
          jax.vmap(make_train(cfg, prepared).run_epochs, in_axes=(0, None, None)), static_argnums=2
      )
      compiled = run.lower(state, prepared, FLAGS.epochs).compile()
      seconds = _best_time(lambda: compiled(state, prepared), FLAGS.repeats)
      # XLA counts a loop body once, whatever its trip count: count a one-epoch chunk.
      flops_per_epoch = _flops(run.lower(state, prepared, 1).compile())
      row = {
          'seeds': seeds,
          'test_every': test_every,
          'matmul_precision': precision,
          'inputs_used': int(prepared.x_train.shape[1]),
          'seconds_per_chunk': seconds,
          'seed_epochs_per_s': seeds * FLAGS.epochs / seconds,
          'flops_per_seed_epoch': flops_per_epoch / seeds,
          'gflop_per_s': flops_per_epoch * FLAGS.epochs / seconds / 1e9,
      }
      if (test_every, precision) == _VARIANTS[0]:
        row['op_seconds_per_chunk'] = _op_profile(
            compiled, (state, prepared), prepared.x_train.shape[1]
        )
      results['engine'].append(row)
      print(
          f'{seeds:4d} seeds, test_every={test_every}, {precision:8s}: '
          f'{row["seed_epochs_per_s"]:9.1f} seed-epochs/s  {row["gflop_per_s"]:6.1f} GFLOP/s  '
          f'({row["flops_per_seed_epoch"] / 1e6:.0f} MFLOP per seed-epoch)',
          flush=True,
      )

  results['matmul_peak_gflop_per_s'] = _matmul_peaks()
  print(
      'matmul peak (2048 x 2048): '
      + ', '.join(f'{k} {v:.1f} GFLOP/s' for k, v in results['matmul_peak_gflop_per_s'].items())
  )
  if FLAGS.cnn_sizes:
    results['cnn'] = cnn_throughput(results['matmul_peak_gflop_per_s'])
  if not FLAGS.engine:
    if FLAGS.output:
      with open(FLAGS.output, 'w') as f:
        json.dump(results, f, indent=2)
    return
  cols = 20 * max(map(int, FLAGS.seeds))  # H = 20, the default width
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
    print(
        f'{row["seeds"]:4d} seeds, test_every={row["test_every"]}, '
        f'{row["matmul_precision"]:8s}: {row["fraction_of_peak"]:.0%} of the float32 rate of '
        "the first layer's products at P alone (the test-set pass multiplies larger ones)"
    )

  results['profile'] = _profile(results['engine'])
  for p in results['profile']:
    print(
        f'{p["seeds"]:4d} seeds, epoch {p["epoch_seconds"] * 1e3:.1f} ms: first-layer products '
        f'{p["first_layer_products"]:.0%}, other ops {p["other_ops"]:.0%} of the traced op '
        f'time; the test-set pass is {p["test_pass"]:.0%} of the epoch'
    )

  if FLAGS.memory_epochs:
    del x, w, d
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            '--memory_child',
            f'--memory_seeds={FLAGS.memory_seeds}',
            f'--memory_epochs={FLAGS.memory_epochs}',
            f'--train_size={FLAGS.train_size}',
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    # Not ru_maxrss of RUSAGE_CHILDREN: Linux carries the forked parent's RSS over the exec.
    results['memory_run'] = dict(
        json.loads(child.stdout.strip().splitlines()[-1]),
        seeds=FLAGS.memory_seeds,
        epochs=FLAGS.memory_epochs,
    )
    peak_rss = results['memory_run']['peak_rss_bytes']
    print(
        f'memory run {FLAGS.memory_seeds} seeds x {FLAGS.memory_epochs} epochs: peak RSS '
        f'{peak_rss / 2**30:.2f} GiB, {results["memory_run"]["seconds"]:.0f} s'
    )
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
