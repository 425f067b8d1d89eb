"""One run over two processes (jax.distributed, CPU collectives) equals a one-process run."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from absl.testing import flagsaver

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.engine import train
from manifold_dynamics.records import io
from tests.test_experiments import ROOT, inversion_main

FLAGS = dict(train_size=64, epochs=30, seeds=3, chunk_epochs=10, width=6, lr=0.1)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def launch_two(flag_values: dict, data_dir: str, workdir: str):
  """experiments/inversion.py as processes 0 and 1 of one run, one CPU device each."""
  args = [f'--{k}={v}' for k, v in flag_values.items()] + [
      f'--data_dir={data_dir}',
      f'--workdir={workdir}',
      f'--coordinator_address=127.0.0.1:{free_port()}',
      '--num_processes=2',
  ]
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  script = os.path.join(ROOT, 'experiments', 'inversion.py')
  return [
      subprocess.Popen(
          [sys.executable, script, *args, f'--process_id={i}'],
          env=env,
          cwd=ROOT,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for i in range(2)
  ]


def test_two_processes_equal_one(mnist_dir, tmp_path):
  """3 seeds over 2 processes of one CPU device each: padded to 4, sharded 2 + 2, gathered;
  process 0 alone writes the run directory, which equals the one-process run's."""
  workdir = str(tmp_path / 'two')
  processes = launch_two(FLAGS, mnist_dir, workdir)
  outputs = [p.communicate(timeout=300) for p in processes]
  for p, (out, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  assert 'padded to 4' in outputs[0][0] and 'results in' in outputs[0][0]
  assert 'results in' not in outputs[1][0]  # process 1 trains but writes nothing
  assert sorted(os.listdir(tmp_path)) == ['tiny_mnist', 'two']  # no .partial left
  config = io.read_json(os.path.join(workdir, 'config.json'))
  assert len(config['environment']['devices']) == 2

  single = str(tmp_path / 'one')
  with flagsaver.flagsaver(data_dir=mnist_dir, workdir=single, **FLAGS):
    inversion_main.main(['inversion.py'])
  two, one = io.load_run(workdir), io.load_run(single)
  for name in ('R_plus', 'R_minus', 'D', 'loss', 'train_error', 'test_error'):
    np.testing.assert_allclose(
        getattr(two.history, name), getattr(one.history, name), rtol=1e-5, atol=1e-6, err_msg=name
    )
  assert np.mean(two.history.mistakes() == one.history.mistakes()) > 0.999
  assert two.summary['t_star']['R_plus'] == one.summary['t_star']['R_plus']


@pytest.mark.slow
def test_two_processes_stop_together_and_resume(mnist_dir, tmp_path):
  """SIGTERM to both processes: they stop at the same chunk boundary; the same two commands
  resume (process 0 reads the checkpoint and broadcasts it), and the records equal a
  one-process run of the same epochs."""
  workdir = str(tmp_path / 'two')
  progress = os.path.join(f'{workdir}.partial', 'history', 'progress.json')
  flags_ = dict(FLAGS, epochs=100000, chunk_epochs=50)

  def launch_and_stop(after: int):
    processes = launch_two(flags_, mnist_dir, workdir)
    deadline = time.time() + 240
    while time.time() < deadline and epochs_trained() < after:
      time.sleep(0.2)
    for p in processes:
      p.send_signal(signal.SIGTERM)
    outputs = [p.communicate(timeout=120) for p in processes]
    for p, (_, err) in zip(processes, outputs):
      assert p.returncode == 1 and 'run the same command again to resume' in err, err[-2000:]
    return [out for out, _ in outputs]

  def epochs_trained():
    try:
      with open(progress) as f:
        return json.load(f)['epochs_trained']
    except (OSError, ValueError):
      return 0

  launch_and_stop(after=100)
  first = epochs_trained()
  outputs = launch_and_stop(after=first + 100)
  for out in outputs:  # process 1 learnt where to resume from process 0
    assert f'resuming at epoch {first} of 100000' in out
  done = epochs_trained()
  history = io.load_run(f'{workdir}.partial').history
  assert history.num_epochs + 1 == done

  task = load_task(DataConfig(train_size=64, data_dir=mnist_dir), log=lambda _: None)
  cfg = TrainConfig(**{k: v for k, v in FLAGS.items() if k != 'train_size'})
  single = train.fit(
      dataclasses.replace(cfg, epochs=done, chunk_epochs=50),
      train.TrainData.from_task(task),
      log=None,
  )
  for name in ('R_plus', 'R_minus', 'D', 'loss', 'train_error'):
    np.testing.assert_allclose(
        getattr(history, name), getattr(single, name)[:, :done], rtol=1e-5, atol=1e-6, err_msg=name
    )
