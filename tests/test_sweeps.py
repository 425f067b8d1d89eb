"""Sweeps: a grid of run directories that resumes, refuses other grids and splits over workers."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from manifold_dynamics.studies import sweeps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = TrainConfig(
    seeds=2, epochs=8, lr=0.5, chunk_epochs=4, test_every=0, model_settings=dict(width=6)
)


def grid(data_dir, sizes=(32, 48, 64, 80)):
  return [
      sweeps.Point(f'P{P}', DataConfig(train_size=P, data_dir=data_dir), TRAIN, {'train_size': P})
      for P in sizes
  ]


def counting(calls, fail_on=None):
  """A train_point that records its calls and trains for real, or dies on `fail_on`."""

  def train_point(point, directory, log):
    calls.append(point.name)
    if point.name == fail_on:
      os.makedirs(f'{directory}.partial-killed')  # what a killed run leaves behind
      raise KeyboardInterrupt
    sweeps._train_point(point, directory, log)

  return train_point


def test_skips_complete_points_and_resumes_after_a_killed_worker(mnist_dir, tmp_path):
  points = grid(mnist_dir)
  sweep = sweeps.SweepDir(str(tmp_path / 'sweep'), 'test', points)
  calls = []
  with pytest.raises(KeyboardInterrupt):
    sweeps.run(sweep, log=lambda _: None, train_point=counting(calls, fail_on='P64'))
  assert calls == ['P32', 'P48', 'P64'] and [p.name for p in sweep.complete()] == ['P32', 'P48']
  calls.clear()
  again = sweeps.SweepDir(str(tmp_path / 'sweep'), 'test', points)
  done = sweeps.run(again, log=lambda _: None, train_point=counting(calls))
  assert calls == ['P64', 'P80'] and len(done) == 4
  assert not [d for d in os.listdir(tmp_path / 'sweep' / 'points') if 'partial' in d]
  run = io.load_run(again.point_dir(points[0]))
  assert run.config['data']['train_size'] == 32 and run.history.num_seeds == 2
  calls.clear()
  sweeps.run(again, log=lambda _: None, train_point=counting(calls))
  assert calls == []


def test_an_interruption_ends_the_whole_sweep(mnist_dir, tmp_path):
  """SIGTERM in the middle of a point is not a failing point: the sweep stops there, to be
  resumed, rather than going on to the next point."""
  from manifold_dynamics.engine import preemption  # pylint: disable=g-import-not-at-top

  sweep = sweeps.SweepDir(str(tmp_path / 'sweep'), 'test', grid(mnist_dir))
  calls = []

  def interrupted(point, directory, log):
    calls.append(point.name)
    raise preemption.Interrupted('SIGTERM received: stopped')

  with pytest.raises(preemption.Interrupted):
    sweeps.run(sweep, log=lambda _: None, train_point=interrupted)
  assert calls == ['P32'] and not sweep.failures


def test_a_different_grid_is_refused(mnist_dir, tmp_path):
  path = str(tmp_path / 'sweep')
  sweeps.SweepDir(path, 'test', grid(mnist_dir))
  with pytest.raises(UserError, match='holds a different grid .*4 points, not 3'):
    sweeps.SweepDir(path, 'test', grid(mnist_dir, (32, 48, 64)))
  other = [
      dataclasses.replace(p, train=dataclasses.replace(TRAIN, lr=0.1)) for p in grid(mnist_dir)
  ]
  with pytest.raises(UserError, match='point P32 has other settings'):
    sweeps.SweepDir(path, 'test', other)
  # how much memory a run may use is not part of the grid: a point that ran out of memory
  # reruns with --seed_batch, the others keep what they ran with
  lighter = [
      dataclasses.replace(p, train=dataclasses.replace(TRAIN, seed_batch=1, eval_batch_size=8))
      for p in grid(mnist_dir)
  ]
  sweeps.SweepDir(path, 'test', lighter)
  with pytest.raises(UserError, match="experiment 'test', not 'other'"):
    sweeps.SweepDir(path, 'other', grid(mnist_dir))
  os.makedirs(tmp_path / 'busy')
  (tmp_path / 'busy' / 'file').write_text('x')
  with pytest.raises(UserError, match='not a sweep directory'):
    sweeps.SweepDir(str(tmp_path / 'busy'), 'test', grid(mnist_dir))


def test_points_need_unique_plain_names(mnist_dir, tmp_path):
  point = grid(mnist_dir)[0]
  with pytest.raises(UserError, match='names a point twice'):
    sweeps.SweepDir(str(tmp_path / 'a'), 'test', [point, point])
  with pytest.raises(UserError, match='not a plain directory name'):
    sweeps.SweepDir(str(tmp_path / 'b'), 'test', [dataclasses.replace(point, name='a/b')])


def test_workers_split_the_points_and_read_the_cluster_environment():
  points = list(range(7))
  shares = [sweeps.assign(points, 3, i) for i in range(3)]
  assert sorted(sum(shares, [])) == points and shares[1] == [1, 4]
  assert sweeps.worker_from_env(None, None, {}) == (1, 0)
  assert sweeps.worker_from_env(
      None, None, {'SLURM_ARRAY_TASK_ID': '3', 'SLURM_ARRAY_TASK_COUNT': '4'}
  ) == (4, 3)
  assert sweeps.worker_from_env(
      None,
      None,
      {'SLURM_ARRAY_TASK_ID': '6', 'SLURM_ARRAY_TASK_MIN': '5', 'SLURM_ARRAY_TASK_COUNT': '2'},
  ) == (2, 1)
  assert sweeps.worker_from_env(3, None, {'JOB_COMPLETION_INDEX': '2'}) == (3, 2)
  assert sweeps.worker_from_env(2, 1, {'SLURM_ARRAY_TASK_ID': '0'}) == (2, 1)  # flags win
  for tasks, index in ((2, 2), (2, -1), (0, 0)):
    with pytest.raises(UserError, match='--task_index must be in|--num_tasks must be'):
      sweeps.worker_from_env(tasks, index, {})


WORKER = r"""
import sys
sys.path.insert(0, %(root)r)
from manifold_dynamics.studies import sweeps
from tests.test_sweeps import grid
sweep = sweeps.SweepDir(%(path)r, 'test', grid(%(data)r))
sweeps.run(sweep, num_tasks=2, task_index=int(sys.argv[1]))
"""


def test_two_workers_at_once_train_every_point_once_and_match_one_worker(mnist_dir, tmp_path):
  path = str(tmp_path / 'two')
  script = WORKER % dict(root=ROOT, path=path, data=mnist_dir)
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  workers = [
      subprocess.Popen(
          [sys.executable, '-c', script, str(i)],
          stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT,
          text=True,
          env=env,
      )
      for i in (0, 1)
  ]
  logs = [w.communicate(timeout=300)[0] for w in workers]
  assert all(w.returncode == 0 for w in workers), logs
  trained = [
      line.split()[2] for log in logs for line in log.splitlines() if line.startswith('--- point')
  ]
  assert sorted(trained) == ['P32', 'P48', 'P64', 'P80']
  one = sweeps.SweepDir(str(tmp_path / 'one'), 'test', grid(mnist_dir))
  sweeps.run(one, log=lambda _: None)
  two = sweeps.SweepDir(path, 'test', grid(mnist_dir))
  for point in one.points:
    a, b = (io.load_run(s.point_dir(point)).history for s in (one, two))
    for name in ('R_plus', 'R_minus', 'D', 'loss', 'train_error', 'mistakes_packed'):
      np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
  with open(os.path.join(path, 'config.json')) as f:
    assert len(json.load(f)['points']) == 4


def test_a_sweep_written_before_a_new_config_field_still_resumes(mnist_dir, tmp_path):
  path = str(tmp_path / 'sweep')
  sweeps.SweepDir(path, 'test', grid(mnist_dir))
  config = io.read_json(os.path.join(path, 'config.json'))
  for point in config['points']:
    del point['train']['layers']  # as written by a version without the field
  io.write_json(os.path.join(path, 'config.json'), config)
  sweeps.SweepDir(path, 'test', grid(mnist_dir))  # the default keeps the old behaviour
  changed = [
      dataclasses.replace(p, train=dataclasses.replace(TRAIN, layers='all'))
      for p in grid(mnist_dir)
  ]
  with pytest.raises(UserError, match='has other settings'):
    sweeps.SweepDir(path, 'test', changed)


def test_a_failing_point_does_not_stop_the_others_and_fails_at_the_end(mnist_dir, tmp_path, capsys):
  from tests.test_fig3 import init_scale_main, run_error  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / 'init')
  err = run_error(
      init_scale_main.main,
      capsys,
      data_dir=mnist_dir,
      workdir=workdir,
      train_size=64,
      init_scales=['0.5', '1'],
      seeds=2,
      epochs=20,
      width=6,
      depth=2,
      lr=1e4,
      chunk_epochs=10,
  )  # the loss explodes at both scales
  assert '2 point(s) of the sweep failed' in err and err.count('lower --lr') == 2
  assert 's0.5 (' in err and 's1 (' in err  # both were tried: the first did not stop the run
  summary = io.read_json(os.path.join(workdir, 'summary.json'))  # written all the same
  assert summary['points_total'] == 2 and summary['points_complete'] == 0


def test_a_point_out_of_memory_fails_alone_and_says_what_to_do(mnist_dir, tmp_path):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def train_point(point, directory, log):
    if point.name == 'P48':
      jnp.zeros((10**12,), jnp.float32).block_until_ready()  # 4 TB: XLA's RESOURCE_EXHAUSTED
    sweeps._train_point(point, directory, log)

  sweep = sweeps.SweepDir(str(tmp_path / 'sweep'), 'test', grid(mnist_dir, (32, 48, 64)))
  done = sweeps.run(sweep, log=lambda _: None, train_point=train_point)
  assert [p.name for p in done] == ['P32', 'P64']
  with pytest.raises(UserError, match=r'1 point\(s\) .* P48 \(out of memory .*--seed_batch'):
    sweep.raise_failures()


def test_collecting_a_missing_sweep_and_bad_cluster_variables_are_one_line_errors(
    mnist_dir, tmp_path
):
  with pytest.raises(UserError, match='no sweep in .* to collect'):
    sweeps.SweepDir(str(tmp_path / 'typo'), 'test', grid(mnist_dir), create=False)
  assert not os.path.exists(tmp_path / 'typo')
  with pytest.raises(UserError, match=r"\$SLURM_ARRAY_TASK_ID='x' is not an integer"):
    sweeps.worker_from_env(None, None, {'SLURM_ARRAY_TASK_ID': 'x'})
