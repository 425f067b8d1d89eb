"""One run over two processes (jax.distributed, CPU collectives) equals a one-process run."""

import os
import socket
import subprocess
import sys

import numpy as np
from absl.testing import flagsaver

from manifold_dynamics import io
from tests.test_experiments import ROOT, inversion_main

FLAGS = dict(train_size=64, epochs=30, seeds=3, chunk_epochs=10, width=6, lr=0.1)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(mnist_dir, tmp_path):
  """3 seeds over 2 processes of one CPU device each: padded to 4, sharded 2 + 2, gathered;
  process 0 alone writes the run directory, which equals the one-process run's."""
  workdir = str(tmp_path / 'two')
  args = [f'--{k}={v}' for k, v in FLAGS.items()] + [
      f'--data_dir={mnist_dir}', f'--workdir={workdir}',
      f'--coordinator_address=127.0.0.1:{free_port()}', '--num_processes=2']
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  script = os.path.join(ROOT, 'experiments', 'inversion.py')
  processes = [subprocess.Popen([sys.executable, script, *args, f'--process_id={i}'], env=env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for i in range(2)]
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
    np.testing.assert_allclose(getattr(two.history, name), getattr(one.history, name),
                               rtol=1e-5, atol=1e-6, err_msg=name)
  assert np.mean(two.history.mistakes() == one.history.mistakes()) > 0.999
  assert two.summary['t_star']['R_plus'] == one.summary['t_star']['R_plus']
