r"""What reduced-precision matrix products do to the science, seed by seed (run by hand).

    python experiments/inversion.py --dataset=mnist --seeds=100 --workdir=runs/prec-float32
    python experiments/inversion.py --dataset=mnist --seeds=100 --matmul_precision=bfloat16 \
        --workdir=runs/prec-bfloat16
    python benchmarks/precision.py --reference=runs/prec-float32 --candidate=runs/prec-bfloat16

Two run directories of the same configuration but --matmul_precision (same keys, so seed s
of one is seed s of the other) are compared per seed: t* of R+, R- and D, the inversion
flags, phi, the straggler set S(t*(R+)) (size and Jaccard overlap with the reference seed's),
the largest difference of the R+, R-, D curves and the final training and test errors. The
seed-to-seed spread of the reference is printed next to each difference: a reduced precision
is safe for this science when what it moves is small against what another seed moves.
Prints a report and writes it as JSON to --output.
"""

import dataclasses
import json

import numpy as np
from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.analysis import inversion
from manifold_dynamics.config import DataConfig, TrainConfig, upgraded
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import history as history_lib
from manifold_dynamics.records import io

flags.DEFINE_string('reference', None, 'Run directory trained with full float32 products.')
flags.DEFINE_string('candidate', None, 'The same run with another --matmul_precision.')
flags.DEFINE_string('output', None, 'Write the report as JSON here.')
FLAGS = flags.FLAGS


def _mean_std(x) -> list:
  return [float(np.mean(x)), float(np.std(x))]


def compare(reference: io.Run, candidate: io.Run) -> dict:
  """The per-seed comparison described in the module docstring."""
  # Settings a run's config.json predates (written before they existed) take their defaults.
  train_defaults = json.loads(json.dumps(dataclasses.asdict(TrainConfig())))
  data_defaults = json.loads(json.dumps(dataclasses.asdict(DataConfig())))
  # A run written before the models held their own settings has them as fields: `upgraded`.
  ref_cfg = {**train_defaults, **upgraded(reference.config['train']), 'matmul_precision': None}
  cand_cfg = {**train_defaults, **upgraded(candidate.config['train']), 'matmul_precision': None}
  ref_data = {**data_defaults, **reference.config['data']}
  if ref_cfg != cand_cfg or ref_data != {**data_defaults, **candidate.config['data']}:
    raise UserError(
        'the two runs differ in more than --matmul_precision; compare runs of one ' 'configuration.'
    )
  a, b = reference.history, candidate.history
  if a.num_epochs != b.num_epochs:
    raise UserError(
        f'the runs trained {a.num_epochs} and {b.num_epochs} epochs; compare '
        'full-length runs (without --stop_after_inversion).'
    )
  inv_a, inv_b = inversion.analyse(a), inversion.analyse(b)
  # Runs written before --matmul_precision existed computed float32 products.
  report = {
      'precisions': [
          reference.config['train'].get('matmul_precision', 'float32'),
          candidate.config['train'].get('matmul_precision', 'float32'),
      ],
      'seeds': a.num_seeds,
      'epochs': a.num_epochs,
  }
  for name in history_lib.OBSERVABLES:
    ca, cb = inv_a.curves[name], inv_b.curves[name]
    shift = np.abs(ca.t_star.astype(int) - cb.t_star.astype(int))
    report[name] = {
        't_star': [_mean_std(ca.t_star), _mean_std(cb.t_star)],
        't_star_differs': int(np.sum(shift > 0)),
        't_star_max_shift': int(shift.max()),
        'inverted': [int(ca.inverted.sum()), int(cb.inverted.sum())],
        'curve_max_abs_difference': float(np.max(np.abs(getattr(a, name) - getattr(b, name)))),
        'curve_seed_spread': float(np.median(np.std(getattr(a, name), axis=0))),
    }
  report['phi'] = [_mean_std(inv_a.phi), _mean_std(inv_b.phi)]
  report['phi_max_abs_difference'] = float(np.max(np.abs(inv_a.phi - inv_b.phi)))
  sets_a = inversion.stragglers(a, inv_a.t_star)
  sets_b = inversion.stragglers(b, inv_b.t_star)
  report['stragglers_size'] = [
      _mean_std([len(s) for s in sets_a]),
      _mean_std([len(s) for s in sets_b]),
  ]

  def jaccard(x, y):  # two empty sets are the same set
    union = len(np.union1d(x, y))
    return len(np.intersect1d(x, y)) / union if union else 1.0

  report['stragglers_jaccard_same_seed'] = _mean_std(
      [jaccard(x, y) for x, y in zip(sets_a, sets_b)]
  )
  # The yardstick: how much two different float32 seeds share.
  report['stragglers_jaccard_other_seed'] = _mean_std(
      [jaccard(sets_a[s], sets_a[(s + 1) % len(sets_a)]) for s in range(len(sets_a))]
  )
  for name in ('train_error', 'test_error'):
    report[f'final_{name}'] = [
        _mean_std(getattr(a, name)[:, -1]),
        _mean_std(getattr(b, name)[:, -1]),
    ]
  return report


def main(argv):
  cli.reject_arguments(argv)
  if not (FLAGS.reference and FLAGS.candidate):
    raise app.UsageError('pass --reference and --candidate run directories.')
  with cli.one_line_errors(argv[0]):
    report = compare(io.load_run(FLAGS.reference), io.load_run(FLAGS.candidate))
  print(json.dumps(report, indent=2))
  if FLAGS.output:
    io.write_json(FLAGS.output, report)


if __name__ == '__main__':
  app.run(main)
