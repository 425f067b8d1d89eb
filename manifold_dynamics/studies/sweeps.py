"""Sweeps: a named grid of runs, trained point by point into one directory.

A sweep is data, not code: a list of `Point`s (a name, a DataConfig, a TrainConfig and the
labels an analysis groups by), built once by an experiment family (scaling, architectures,
...) and serialised into the sweep directory:

  SWEEP/config.json     the experiment and every point; written once, and a later run with a
                        different grid is refused, never mixed in;
  SWEEP/points/NAME/    one ordinary run directory per point (the io.RunDir contract:
                        config.json, history/, stragglers.npz, summary.json); it appears
                        atomically when the point is complete, so "present" means "done";
  SWEEP/summary.json    one entry per complete point, plus the family's analysis;
  SWEEP/*.png, *.pdf    the family's figures.

Running a sweep again skips the complete points: a killed worker loses at most the point it
was training. Points are split over `num_tasks` independent workers (a SLURM job array, a
Kubernetes Indexed Job, or processes on one machine) by index, point i going to worker
i mod num_tasks, so workers writing into one directory never train a point twice. Summary and
figures are rebuilt from whatever points are complete, by every worker when it finishes and
by `collect_only`.

`Sweep` is the skeleton of every sweep study, as `skeleton.Study` is of a single run: a study
builds its points, then

    sweep = Sweep.run('scaling', points, workdir, workers, log)   # this worker's points
    summary = ...   # the study's analysis of sweep.done (analysis/)
    sweep.write_summary(summary)
    sweep.draw(plots.phi_vs_train_size(...), 'phi_vs_train_size')  # plotting/<study>.py
    return sweep.close(summary)
"""

import contextlib
import dataclasses
import glob
import os
import shutil
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from manifold_dynamics.config import MEMORY_ONLY, DataConfig, TrainConfig, upgraded
from manifold_dynamics.engine import models, preemption
from manifold_dynamics.errors import UserError, as_user_error
from manifold_dynamics.plotting import style
from manifold_dynamics.records import io
from manifold_dynamics.studies import skeleton
from manifold_dynamics.studies.inversion import run_inversion

POINTS = 'points'  # subdirectory of the sweep holding one run directory per point


@dataclasses.dataclass(frozen=True)
class Point:
  """One run of a sweep."""

  name: str  # unique within the sweep; the run directory's name (letters, digits, -_.)
  data: DataConfig
  train: TrainConfig
  labels: Mapping[str, object] = dataclasses.field(default_factory=dict)  # for the analysis

  def __post_init__(self):  # the model's settings as its run records them
    object.__setattr__(self, 'train', models.resolve(self.train))

  def to_json(self) -> dict:
    return {
        'name': self.name,
        'labels': dict(self.labels),
        'data': dataclasses.asdict(self.data),
        'train': dataclasses.asdict(self.train),
    }


def _check_points(points: Sequence[Point]):
  names = [p.name for p in points]
  if not points:
    raise UserError('the sweep has no points; check its lists of values.')
  if len(set(names)) != len(names):
    twice = sorted({n for n in names if names.count(n) > 1})
    raise UserError(f'the sweep names a point twice: {twice}; give each point different values.')
  for name in names:
    if not name or not all(c.isalnum() or c in '-_.' for c in name):
      raise UserError(f'sweep point name {name!r} is not a plain directory name.')


def _env_int(environ: Mapping[str, str], name: str, default=None) -> int:
  try:
    return int(environ[name]) if name in environ or default is None else default
  except ValueError:
    raise UserError(
        f'${name}={environ[name]!r} is not an integer; pass --num_tasks and '
        f'--task_index instead.'
    ) from None


def worker_from_env(
    num_tasks: Optional[int], task_index: Optional[int], environ: Mapping[str, str] = os.environ
) -> Tuple[int, int]:
  """(num_tasks, task_index): the flags when given, else a SLURM job array
  (SLURM_ARRAY_TASK_COUNT / SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job
  (JOB_COMPLETION_INDEX, with the count in num_tasks), else one worker."""
  if task_index is None:
    number = lambda name, default=None: _env_int(environ, name, default)
    if 'SLURM_ARRAY_TASK_ID' in environ:
      task_index = number('SLURM_ARRAY_TASK_ID') - number('SLURM_ARRAY_TASK_MIN', 0)
      if num_tasks is None:
        num_tasks = number('SLURM_ARRAY_TASK_COUNT', 1)
    elif 'JOB_COMPLETION_INDEX' in environ:
      task_index = number('JOB_COMPLETION_INDEX')
  num_tasks = 1 if num_tasks is None else num_tasks
  task_index = 0 if task_index is None else task_index
  if num_tasks < 1:
    raise UserError(f'--num_tasks must be >= 1, got {num_tasks}.')
  if not 0 <= task_index < num_tasks:
    raise UserError(
        f'--task_index must be in [0, {num_tasks}) for --num_tasks={num_tasks}, '
        f'got {task_index}.'
    )
  return num_tasks, task_index


class SweepDir:
  """The directory of a sweep (see the module docstring)."""

  def __init__(
      self,
      path: str,
      experiment: str,
      points: Sequence[Point],
      settings: dict = None,
      create: bool = True,
  ):
    _check_points(points)
    self.experiment = experiment
    self.path = os.path.abspath(path)
    self.points = list(points)
    self.failures: List[str] = []  # 'name (message)' of the points that failed in `run`
    grid = {
        'experiment': experiment,
        'settings': settings or {},
        'points': [p.to_json() for p in points],
    }
    config_path = os.path.join(self.path, 'config.json')
    if os.path.exists(self.path) and not os.path.isdir(self.path):
      raise UserError(f'{self.path} exists and is not a directory; choose another --workdir.')
    if os.path.isfile(config_path):
      old = _with_new_defaults(io.read_json(config_path))
      if _comparable({k: old.get(k) for k in grid}) != _comparable(io.strict_json(grid)):
        raise UserError(
            f'sweep directory {self.path} holds a different grid '
            f'({_difference(old, grid)}); choose another --workdir, or delete it '
            f'to start again.'
        )
    elif not create:
      raise UserError(
          f'there is no sweep in {self.path} (no config.json) to collect; check '
          f'--workdir, or run without --collect_only to start it.'
      )
    else:
      # Another worker may be creating this sweep right now: its `points` and its config.json
      # on the way in (atomic rename) are not someone else's files.
      others = [
          f
          for f in (os.listdir(self.path) if os.path.isdir(self.path) else [])
          if f != POINTS and not f.startswith('config.json')
      ]
      if others:
        raise UserError(
            f'{self.path} is not empty and is not a sweep directory (no '
            f'config.json); choose another --workdir.'
        )
      os.makedirs(os.path.join(self.path, POINTS), exist_ok=True)
      io.write_json(config_path, dict(grid, environment=skeleton.environment()))

  def raise_failures(self):
    """After the summary and figures are written: a one-line error naming the points that
    failed in this run (they are retried when the command runs again)."""
    if self.failures:
      raise UserError(
          f'{len(self.failures)} point(s) of the sweep failed, the others are '
          f'complete and summarised: {"; ".join(self.failures)}'
      )

  @contextlib.contextmanager
  def failing_alone(self, label: str, log: Callable[[str], None]):
    """Runs the body; if it raises a UserError (a diverging lr) or runs out of memory
    (errors.as_user_error), logs it and records it under `label` for `raise_failures`, so that
    the rest of the sweep goes on. Any other error propagates, and so does an interruption
    (SIGTERM, Ctrl-C: `preemption.Interrupted`), which ends the whole sweep, to be resumed."""
    try:
      yield
    except preemption.Interrupted:
      raise
    except Exception as e:  # pylint: disable=broad-except
      failure = as_user_error(e)
      if failure is None:
        raise
      log(f'{label} failed: {failure}')
      self.failures.append(f'{label} ({failure})')

  def point_dir(self, point: Point) -> str:
    return os.path.join(self.path, POINTS, point.name)

  def is_complete(self, point: Point) -> bool:
    return os.path.isfile(os.path.join(self.point_dir(point), 'summary.json'))

  def complete(self) -> List[Point]:
    return [p for p in self.points if self.is_complete(p)]

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)


def _with_new_defaults(config: dict) -> dict:
  """A sweep's config.json with the config fields added since it was written set to their
  defaults (which keep the old behaviour), and the model settings of an earlier version
  moved into model_settings, the model's defaults filled in, so a sweep survives an upgrade
  of the package."""
  defaults = {'data': dataclasses.asdict(DataConfig()), 'train': dataclasses.asdict(TrainConfig())}
  for point in config.get('points', []):
    if 'train' in point:
      point['train'] = upgraded(point['train'])
    for section, values in defaults.items():
      if section in point:
        point[section] = {**io.strict_json(values), **point[section]}
    if 'train' in point:
      train = TrainConfig.from_dict(point['train'])
      point['train']['model_settings'] = io.strict_json(models.resolved(train))
  return config


def _comparable(grid: dict) -> dict:
  """A grid without the fields a sweep may change between runs (config.MEMORY_ONLY)."""
  points = [
      dict(p, train={k: v for k, v in p['train'].items() if k not in MEMORY_ONLY})
      for p in grid.get('points') or []
  ]
  return dict(grid, points=points)


def _difference(old: dict, new: dict) -> str:
  if old.get('experiment') != new['experiment']:
    return f'experiment {old.get("experiment")!r}, not {new["experiment"]!r}'
  old_points = {p['name']: p for p in old.get('points', [])}
  new_points = {p['name']: p for p in io.strict_json(new['points'])}
  if set(old_points) != set(new_points):
    extra = sorted(set(new_points) - set(old_points))[:3]
    missing = sorted(set(old_points) - set(new_points))[:3]
    return (
        f'{len(old_points)} points, not {len(new_points)}'
        + (f'; new here: {", ".join(extra)}' if extra else '')
        + (f'; only there: {", ".join(missing)}' if missing else '')
    )
  for name, point in new_points.items():
    if old_points[name] != point:
      return f'point {name} has other settings'
  return 'other sweep settings'


def assign(points: Sequence[Point], num_tasks: int, task_index: int) -> List[Point]:
  """The points worker `task_index` of `num_tasks` trains: every num_tasks-th, by index."""
  return [p for i, p in enumerate(points) if i % num_tasks == task_index]


def run(
    sweep: SweepDir,
    num_tasks: int = 1,
    task_index: int = 0,
    collect_only: bool = False,
    log: Callable[[str], None] = print,
    train_point: Callable[[Point, str, Callable], object] = None,
) -> List[Point]:
  """Trains this worker's incomplete points, one run directory each; returns every complete
  point of the sweep (this worker's and the others')."""
  train_point = train_point or _train_point
  mine = assign(sweep.points, num_tasks, task_index)
  todo = [p for p in mine if not sweep.is_complete(p)]
  if collect_only:
    todo = []
  else:
    log(
        f'sweep {sweep.path}: worker {task_index + 1} of {num_tasks}, {len(mine)} points, '
        f'{len(mine) - len(todo)} already complete, {len(todo)} to train'
    )
  for i, point in enumerate(todo):
    directory = sweep.point_dir(point)
    # NAME.partial, left by a killed run of this point, resumes from its checkpoint;
    # NAME.partial-TIMESTAMP-PID, from versions before resume, cannot be resumed.
    for stale in glob.glob(f'{directory}.partial-*'):
      shutil.rmtree(stale, ignore_errors=True)
    log(f'--- point {point.name} ({i + 1}/{len(todo)} of this worker)')
    with sweep.failing_alone(point.name, log):
      train_point(point, directory, log)
  done = sweep.complete()
  log(f'sweep {sweep.path}: {len(done)} of {len(sweep.points)} points complete')
  return done


@dataclasses.dataclass(frozen=True)
class Workers:
  """This process's share of a sweep: worker `task_index` of `num_tasks` (`assign`), and with
  `collect_only` none, only rebuilding the summary and figures from the complete points."""

  num_tasks: int = 1
  task_index: int = 0
  collect_only: bool = False


@dataclasses.dataclass
class Sweep:
  """One sweep directory with this worker's points trained (see the module docstring)."""

  directory: SweepDir
  done: List[Point]  # every complete point, of every worker
  workers: Workers
  log: Callable[[str], None]

  @classmethod
  def run(
      cls,
      experiment: str,
      points: Sequence[Point],
      workdir: str,
      workers: Workers = Workers(),
      log: Callable[[str], None] = print,
      settings: Optional[dict] = None,
      train_point: Optional[Callable[[Point, str, Callable], object]] = None,
  ) -> 'Sweep':
    """Opens the sweep directory (refusing another grid) and trains this worker's
    incomplete points (`run`), each with `train_point` (default: an inversion run)."""
    directory = SweepDir(workdir, experiment, points, settings, create=not workers.collect_only)
    done = run(
        directory, workers.num_tasks, workers.task_index, workers.collect_only, log, train_point
    )
    return cls(directory, done, workers, log)

  @property
  def path(self) -> str:
    return self.directory.path

  @property
  def points(self) -> List[Point]:
    return self.directory.points

  def mine(self) -> List[Point]:
    """This worker's points (complete or not)."""
    return assign(self.points, self.workers.num_tasks, self.workers.task_index)

  def summaries(self, points: Optional[Sequence[Point]] = None) -> Dict[str, dict]:
    """summary.json of the complete points (or of `points`), by name."""
    return point_summaries(self.directory, self.done if points is None else points)

  def load(self, point: Point) -> io.Run:
    return load_point(self.directory, point)

  def file(self, name: str) -> str:
    return self.directory.file(name)

  def write_summary(self, summary: dict) -> dict:
    """SWEEP/summary.json: the experiment, how many points are complete, then `summary`."""
    summary = {
        'experiment': self.directory.experiment,
        'points_total': len(self.points),
        'points_complete': len(self.done),
        **summary,
    }
    io.write_json(self.file('summary.json'), summary)
    return summary

  def draw(self, fig, name: str):
    """Saves figure `fig` as SWEEP/NAME.png and .pdf."""
    style.save(fig, self.path, name)

  def close(self, summary: dict) -> dict:
    """Says where the results are, then fails (one line) if any point failed; returns
    `summary`."""
    self.log(f'results in {self.path}')
    self.directory.raise_failures()
    return summary


def _train_point(point: Point, directory: str, log: Callable[[str], None]):
  run_inversion(point.data, point.train, directory, figures=False, log=log)


def point_summaries(sweep: SweepDir, points: Sequence[Point]) -> Dict[str, dict]:
  """summary.json of every given (complete) point, by name."""
  return {p.name: io.read_json(os.path.join(sweep.point_dir(p), 'summary.json')) for p in points}


def load_point(sweep: SweepDir, point: Point) -> io.Run:
  return io.load_run(sweep.point_dir(point))
