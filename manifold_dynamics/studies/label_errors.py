"""Label errors found, every detector on the same runs, the ground truth from outside (issue 26,
SPEC §9): a sweep of audits (studies/audit.py), one per setting, and one table per ground truth.

  flips         synthetic flips on ten classes, symmetric and class-conditional, at several
                fractions f: E = the flipped examples;
  test_errors   the published test-set label errors (Northcutt et al. 2021), training on the
                test split: E = the examples fewer than 3 of 5 reviewers labelled as given;
  cifar10n      CIFAR-10N's human labels of the CIFAR-10 training set (aggre, random_label1,
                worse): E = the examples whose human label differs from the clean one.

Each point is an audit directory (SWEEP/points/NAME); the sweep is resumable and splittable
like every sweep. The summary holds every point's detection rows and cost, and table.md the
tables (detectors as rows).
"""

import os
from typing import Callable, Dict, List, Sequence

import numpy as np

from manifold_dynamics.analysis import detection
from manifold_dynamics.records import io
from manifold_dynamics.studies import sweeps
from manifold_dynamics.studies.audit import run_audit

STUDIES = ('flips', 'test_errors', 'cifar10n')


def audit_point(name: str, data_cfg, train_cfg, **audit) -> sweeps.Point:
  """A sweep point whose run is an audit with the settings `audit` (cleanlab, cv_folds,
  cv_seeds, groundtruth_path: kept in the point's labels)."""
  return sweeps.Point(name, data_cfg, train_cfg, dict(audit))


def run_label_errors(
    study: str,
    points: Sequence[sweeps.Point],
    workdir: str,
    workers: sweeps.Workers = sweeps.Workers(),
    log: Callable[[str], None] = print,
) -> dict:
  """Audits every point (resumable) and tabulates the complete ones."""

  def train_point(point: sweeps.Point, directory: str, log: Callable[[str], None]):
    labels = dict(point.labels)
    run_audit(point.data, point.train, directory, log=log, **labels)

  sweep = sweeps.Sweep.run(
      f'label_errors_{study}', points, workdir, workers, log, train_point=train_point
  )
  results = {p.name: sweep.summaries([p])[p.name] for p in sweep.done}
  text = tables(study, results)
  summary = sweep.write_summary(
      {
          'study': study,
          'points': {
              name: {
                  'groundtruth': s.get('groundtruth'),
                  'detection': s.get('detection'),
                  'cost_seed_epochs': s['cost_seed_epochs'],
                  'phi_mean': s['phi_mean'],
                  'epochs_trained': s['epochs_trained'],
                  'cleanlab_version': s.get('cleanlab_version'),
              }
              for name, s in results.items()
          },
      }
  )
  io.write_text(sweep.file('table.md'), text + '\n')
  log(text)
  return sweep.close(summary)


def tables(study: str, results: Dict[str, dict]) -> str:
  """The tables of a study: for flips, per data set and kind, AUROC and AP of every detector
  at each fraction; otherwise one table per point (detectors as rows)."""
  out: List[str] = []
  if study == 'flips':
    groups: Dict[str, Dict[str, dict]] = {}
    for name, s in results.items():
      dataset, kind, f = name.rsplit('-', 2)
      groups.setdefault(f'{dataset}, {kind}', {})[f] = s
    for group, by_f in groups.items():
      fs = sorted(by_f, key=lambda f: float(f[1:]))
      detectors = list(next(iter(by_f.values()))['detection'])
      lines = [
          f'**{group} flips: AUROC / AP by flipped fraction**',
          '',
          '| detector | ' + ' | '.join(f'f = {f[1:]}' for f in fs) + ' |',
          '| --- | ' + ' | '.join('---' for _ in fs) + ' |',
      ]
      fmt = lambda v: '-' if v is None else f'{v:.3f}'
      for d in detectors:
        cells = [
            f'{fmt(by_f[f]["detection"][d]["auroc"])} / {fmt(by_f[f]["detection"][d]["ap"])}'
            for f in fs
        ]
        lines.append(f'| {d} | ' + ' | '.join(cells) + ' |')
      out.append('\n'.join(lines))
  else:
    for name, s in results.items():
      if 'detection' not in s:
        continue
      gt = s['groundtruth']
      title = f'{name}: {gt["what"]}, {gt["errors"]} of {s["train_size"]}'
      out.append(detection.table(s['detection'], title))
  return '\n\n'.join(out)


def error_ranks(audit_dir: str) -> Dict[str, List[float]]:
  """Where each known error of an audit ranks, per detector (1 = the most suspect)."""
  return io.read_json(os.path.join(audit_dir, 'summary.json')).get('error_ranks', {})


def unlisted_suspects(audit_dir: str, detector: str = 'q', top: int = 20) -> np.ndarray:
  """The `top` most suspect examples of an audit (by `detector`, an examples.csv column)
  that are not known errors: indices into the split."""
  import csv  # pylint: disable=g-import-not-at-top

  with open(os.path.join(audit_dir, 'examples.csv')) as f:
    rows = list(csv.DictReader(f))
  score = np.array([float(r[detector]) for r in rows])
  known = np.array([int(r.get('known_error', 0)) for r in rows], bool)
  index = np.array([int(r['index']) for r in rows])
  order = np.argsort(-score, kind='stable')
  return index[order][~known[order]][:top]
