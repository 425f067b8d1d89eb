"""Long runs: history streamed to disk, checkpoints, SIGTERM, resume, refusals."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.data import task as task_lib
from manifold_dynamics.engine import preemption, train
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import checkpoint, io, store
from manifold_dynamics.records.history import History
from tests.conftest import make_image_splits

CFG = TrainConfig(epochs=20, seeds=3, lr=0.1, chunk_epochs=4, model_settings=dict(depth=3, width=8))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data():
  x_train, y_train, x_test, y_test = make_image_splits(64, 30, shape=(6, 6))
  raw = task_lib.sources.RawSplits(x_train, y_train, x_test, y_test)
  return train.TrainData.from_task(task_lib.make_task(raw, 64))


@pytest.fixture(scope='module')
def uninterrupted(data):
  """The reference: CFG trained in one go, in memory."""
  return train.fit(CFG, data, log=None, return_state=True)


def new_store(path):
  return store.HistoryStore(str(path), np.arange(64) + 1000)


def assert_histories_equal(a, b):
  for name in History.ARRAYS + History.LAYER_ARRAYS + ('mistakes_packed',):
    x, y = getattr(a, name), getattr(b, name)
    assert (x is None) == (y is None), name
    if x is not None:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
  assert a.num_examples == b.num_examples


def assert_states_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def interrupt_after(epoch: int):
  """A `fit` log that sends this process SIGTERM once the chunk ending at `epoch` is done."""

  def log(line):
    if line.startswith('epoch') and int(line.split()[1].split('/')[0]) == epoch:
      os.kill(os.getpid(), signal.SIGTERM)

  return log


@pytest.mark.parametrize('layers', ['first', 'all'])
def test_streamed_history_equals_the_in_memory_one(data, tmp_path, layers):
  cfg = dataclasses.replace(CFG, layers=layers, epochs=10)
  in_memory = train.fit(cfg, data, log=None)
  streamed = train.fit(cfg, data, log=None, store=new_store(tmp_path / 'history'))
  assert_histories_equal(streamed, in_memory)
  assert isinstance(streamed.mistakes_packed.base, np.memmap)  # read lazily from disk
  assert_histories_equal(io.load_history(str(tmp_path / 'history')), in_memory)
  # the files are plain .npy, epoch-major, readable without this package
  r_plus = np.load(tmp_path / 'history' / 'R_plus.npy')
  np.testing.assert_array_equal(r_plus, in_memory.R_plus.T)
  np.testing.assert_array_equal(
      np.load(tmp_path / 'history' / 'train_indices.npy'), np.arange(64) + 1000
  )
  progress = json.loads((tmp_path / 'history' / 'progress.json').read_text())
  assert progress['status'] == 'complete' and progress['epochs_written'] == 11


def test_sigterm_then_resume_is_bit_identical(data, tmp_path, uninterrupted):
  path = tmp_path / 'history'
  with pytest.raises(
      preemption.Interrupted,
      match='SIGTERM received: stopped at epoch 8 of ' '20 .* run the same command again to resume',
  ):
    train.fit(CFG, data, log=interrupt_after(8), store=new_store(path))
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler restored
  partial = io.load_history(str(path))  # readable while unfinished: epochs 0..7
  for name in History.ARRAYS + ('mistakes_packed',):
    np.testing.assert_array_equal(getattr(partial, name), getattr(uninterrupted[0], name)[:, :8])
  lines = []
  history, state = train.fit(CFG, data, log=lines.append, store=new_store(path), return_state=True)
  assert lines[0] == 'resuming at epoch 8 of 20 from the checkpoint'
  assert_histories_equal(history, uninterrupted[0])
  assert_states_equal(state, uninterrupted[1])


def test_a_chunk_cut_by_a_kill_is_discarded_on_resume(data, tmp_path, uninterrupted):
  """SIGKILL during a chunk's append leaves records past the checkpoint: resume drops them."""
  path = tmp_path / 'history'
  with pytest.raises(preemption.Interrupted):
    train.fit(CFG, data, log=interrupt_after(12), store=new_store(path))
  for name in ('R_plus', 'mistakes_packed'):  # a half-written next chunk, of garbage
    array = store._AppendableArray(str(path / f'{name}.npy'))  # pylint: disable=protected-access
    rows = np.load(path / f'{name}.npy')[:3]
    array.append(rows + 1, at=12)
  progress = json.loads((path / 'progress.json').read_text())
  (path / 'progress.json').write_text(json.dumps(dict(progress, epochs_written=15)))
  history = train.fit(CFG, data, log=None, store=new_store(path))
  assert_histories_equal(history, uninterrupted[0])


def test_a_finished_training_is_read_not_trained_again(data, tmp_path, uninterrupted):
  path = tmp_path / 'history'
  train.fit(CFG, data, log=None, store=new_store(path))
  lines = []
  history, state = train.fit(CFG, data, log=lines.append, store=new_store(path), return_state=True)
  assert lines == ['3 seeds x 20 epochs already trained; read from the store']
  assert_histories_equal(history, uninterrupted[0])
  assert_states_equal(state, uninterrupted[1])


def test_resume_under_a_stop_rule_stops_where_the_uninterrupted_run_stops(noisy_data, tmp_path):
  """The stop rule is fed the history on disk again, so it stops at the same chunk."""
  cfg = TrainConfig(seeds=1, epochs=300, lr=0.2, chunk_epochs=16, stop_after_inversion=True)
  whole = train.fit(cfg, noisy_data, log=None)
  assert 32 < whole.num_epochs < 300
  path = tmp_path / 'history'
  with pytest.raises(preemption.Interrupted):
    train.fit(
        cfg,
        noisy_data,
        log=interrupt_after(32),
        store=store.HistoryStore(str(path), np.arange(256)),
    )
  resumed = train.fit(
      cfg, noisy_data, log=None, store=store.HistoryStore(str(path), np.arange(256))
  )
  assert_histories_equal(resumed, whole)


def test_checkpoint_round_trip_and_refusals(data, tmp_path):
  state, _ = train.start(CFG, data)
  path = str(tmp_path / 'ckpt.npz')
  checkpoint.save(path, state, epochs_trained=7)
  restored, meta = checkpoint.restore(path, state)
  assert meta == {'epochs_trained': 7}
  assert_states_equal(restored, state)
  bigger, _ = train.start(CFG.with_model(width=9), data)
  with pytest.raises(UserError, match='delete it to restart'):
    checkpoint.restore(path, bigger)
  with open(path, 'wb') as f:
    f.write(b'not a checkpoint')
  with pytest.raises(UserError, match='unreadable'):
    checkpoint.restore(path, state)


def test_a_diverged_store_is_not_resumed(data, tmp_path):
  path = tmp_path / 'history'
  cfg = dataclasses.replace(CFG, lr=1e12, activation='relu', init_scale=5.0)
  with pytest.raises(train.DivergenceError):
    train.fit(cfg, data, log=None, store=new_store(path))
  assert json.loads((path / 'progress.json').read_text())['status'] == 'diverged'
  assert io.load_history(str(path)).num_epochs >= 0  # the partial history is kept
  with pytest.raises(UserError, match='diverged at epoch .* lower --lr and pass --overwrite'):
    train.fit(cfg, data, log=None, store=new_store(path))


TINY_FLAGS = ['--train_size=64', '--seeds=2', '--width=6', '--lr=0.5']


def launch_cli(args) -> subprocess.Popen:
  """experiments/inversion.py with `args`, started in the background."""
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'experiments', 'inversion.py')] + args,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
      cwd=ROOT,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
  )


def run_cli(args, **kwargs):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'inversion.py')] + args,
      env=env,
      cwd=ROOT,
      capture_output=True,
      text=True,
      **kwargs,
  )


@pytest.mark.slow  # heavy end to end: make test-all
def test_cli_sigterm_leaves_a_run_that_the_same_command_resumes(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  args = TINY_FLAGS + [
      f'--data_dir={mnist_dir}',
      f'--workdir={workdir}',
      '--epochs=100000',
      '--chunk_epochs=50',
  ]
  process = launch_cli(args)
  progress = os.path.join(f'{workdir}.partial', 'history', 'progress.json')
  deadline = time.time() + 120
  while time.time() < deadline and not (
      os.path.exists(progress) and json.load(open(progress))['epochs_trained'] >= 100
  ):
    time.sleep(0.2)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 1
  assert err.count('\n') == 1 and 'run the same command again to resume' in err, err
  done = json.load(open(progress))['epochs_trained']
  assert done >= 100 and not os.path.exists(workdir)
  # the same command with another setting is refused, and loses nothing
  refused = run_cli([a for a in args if a != '--lr=0.5'] + ['--lr=0.4'])
  assert refused.returncode == 1 and refused.stderr.count('\n') == 1
  assert 'holds an unfinished run with train.lr = 0.5 (now 0.4)' in refused.stderr
  assert '--overwrite' in refused.stderr
  assert json.load(open(progress))['epochs_trained'] == done
  # the same command resumes it (interrupted again, once it has gone further)
  resumed = launch_cli(args)
  deadline = time.time() + 120
  while time.time() < deadline and json.load(open(progress))['epochs_trained'] <= done:
    time.sleep(0.2)
  resumed.send_signal(signal.SIGTERM)
  out, err = resumed.communicate(timeout=120)
  assert f'resuming at epoch {done} of 100000' in out
  assert json.load(open(progress))['epochs_trained'] > done
  history = io.load_run(f'{workdir}.partial').history
  assert history.num_epochs + 1 == json.load(open(progress))['epochs_written']
