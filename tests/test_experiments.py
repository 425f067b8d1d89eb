"""Entry points: --quick-style runs write complete run directories; bad inputs fail in one line."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_experiment(name):
  spec = importlib.util.spec_from_file_location(
      f'experiments_{name}', os.path.join(ROOT, 'experiments', f'{name}.py')
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


inversion_main = load_experiment('inversion')
if not flags.FLAGS.is_parsed():
  flags.FLAGS(['test'])

TINY = dict(train_size=64, epochs=25, seeds=2, chunk_epochs=10, width=6)


def without_mlp_settings(flags: dict) -> dict:
  """`flags` without the MLP's own (--depth, --width), for a run of another model."""
  return {k: v for k, v in flags.items() if k not in ('depth', 'width')}


def test_inversion_writes_a_complete_run_directory(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  with flagsaver.flagsaver(data_dir=mnist_dir, workdir=workdir, lr=0.5, **TINY):
    inversion_main.main(['inversion.py'])
  files = set(os.listdir(workdir))
  assert {
      'config.json',
      'history',
      'stragglers.npz',
      'summary.json',
      'inversion_vs_epoch.png',
      'inversion_vs_epoch.pdf',
      'observables_vs_train_error.png',
      'observables_vs_train_error.pdf',
      'R_plus_per_run.png',
      'R_plus_per_run.pdf',
  } <= files
  config = io.read_json(os.path.join(workdir, 'config.json'))
  assert config['train']['seeds'] == 2 and config['data']['train_size'] == 64
  assert config['environment']['backend'] == 'cpu' and config['environment']['devices']
  run = io.load_run(workdir)
  for name in ('R_plus', 'R_minus', 'D', 'loss', 'train_error', 'test_error'):
    assert getattr(run.history, name).shape == (2, 26)
    assert np.load(os.path.join(workdir, 'history', f'{name}.npy')).shape == (26, 2)
  assert run.history.mistakes_packed.shape == (2, 26, 8)
  assert run.train_indices.shape == (64,)
  summary = run.summary
  assert len(summary['t_star']['R_plus']) == 2 and len(summary['phi']) == 2
  assert summary['seeds'] == 2 and summary['epochs'] == 25
  sets = io.load_stragglers(os.path.join(workdir, 'stragglers.npz'))
  assert [len(s) for s in sets] == summary['n_stragglers']
  masks = run.history.mistakes()
  for s, t in enumerate(summary['t_star']['R_plus']):
    np.testing.assert_array_equal(sets[s], np.flatnonzero(masks[s, t]))
  assert not [p for p in os.listdir(tmp_path) if 'partial' in p]


def test_quick_flag_applies_only_to_unset_flags(mnist_dir, tmp_path, capsys):
  workdir = str(tmp_path / 'quick')
  with flagsaver.flagsaver():
    flags.FLAGS(
        [
            'inversion.py',
            '--quick',
            f'--data_dir={mnist_dir}',
            f'--workdir={workdir}',
            '--train_size=48',
            '--epochs=5',
        ]
    )
    inversion_main.main(['inversion.py'])
  config = io.read_json(os.path.join(workdir, 'config.json'))
  assert config['train']['seeds'] == inversion_main.QUICK['seeds']
  assert config['train']['epochs'] == 5 and config['data']['train_size'] == 48
  assert 'results in' in capsys.readouterr().out


def run_expect_error(capsys, **overrides):
  with flagsaver.flagsaver(**overrides):
    with pytest.raises(SystemExit) as exit_info:
      inversion_main.main(['inversion.py'])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith('inversion.py: error: ')
  return err


def test_existing_run_directory_is_refused(mnist_dir, tmp_path, capsys):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'summary.json').write_text('{"keep": true}')
  err = run_expect_error(capsys, data_dir=mnist_dir, workdir=str(workdir), **TINY)
  assert '--overwrite' in err
  assert json.loads((workdir / 'summary.json').read_text()) == {'keep': True}


@pytest.mark.parametrize(
    'flag, value, message',
    [
        ('seeds', 0, '--seeds must be positive'),
        ('epochs', -3, '--epochs must be positive'),
        ('lr', 0.0, '--lr must be positive'),
        ('train_size', 1000, 'exceeds the 96 training examples'),
        ('depth', 1, '--depth must be >= 2'),
    ],
)
def test_bad_inputs_fail_in_one_line(mnist_dir, tmp_path, capsys, flag, value, message):
  overrides = dict(TINY, data_dir=mnist_dir, workdir=str(tmp_path / 'run'))
  overrides[flag] = value
  assert message in run_expect_error(capsys, **overrides)
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize(
    'overrides, message',
    [
        (dict(model='cnn', layers='conv_9'), "names 'conv_9', which the model does not sow"),
        (dict(batch_size=0), '--batch_size must be positive'),
        (dict(batch_size=65), '--batch_size=65 exceeds the 64 training examples'),
        (dict(task='pair:3,3'), 'names class 3 twice'),
        (dict(labels='/nonexistent/labels.npz:aggre'), '--labels=/nonexistent/labels.npz:aggre'),
        (dict(train_split='test', train_size=20000), 'exceeds the 10000 examples of the test'),
        (dict(dataset='npz:/nonexistent/mine.npz'), 'no such file'),
        (
            dict(model='cnn', cnn_channels=['4', 'x']),
            '--cnn_channels takes comma-separated integers',
        ),
        (dict(cnn_channels=['4']), '--cnn_channels is a setting of --model=cnn'),
        (dict(model='vit', vit_patch=5), '--vit_patch=5 must divide the image size 28x28'),
    ],
)
def test_bad_model_data_and_batch_options(mnist_dir, tmp_path, capsys, overrides, message):
  tiny = dict(TINY) if overrides.get('model', 'mlp') == 'mlp' else without_mlp_settings(TINY)
  err = run_expect_error(
      capsys, **dict(tiny, data_dir=mnist_dir, workdir=str(tmp_path / 'run'), **overrides)
  )
  assert message in err
  assert not (tmp_path / 'run').exists()


def test_a_cnn_on_ten_classes_with_minibatches(mnist_dir, tmp_path):
  """The model contract end to end: per-layer geometry, K-class summary, its figures."""
  workdir = str(tmp_path / 'cnn')
  with flagsaver.flagsaver(
      data_dir=mnist_dir,
      workdir=workdir,
      model='cnn',
      cnn_channels=['2', '3'],
      task='classes',
      layers='all',
      batch_size=32,
      lr=0.05,
      **dict(without_mlp_settings(TINY), epochs=4, chunk_epochs=2, cnn_width=6),
  ):
    inversion_main.main(['inversion.py'])
  run = io.load_run(workdir)
  assert run.config['train']['model'] == 'cnn' and run.config['task']['num_classes'] == 10
  assert run.config['task']['input_shape'] == [28, 28, 1]
  summary = run.summary
  assert summary['layer_names'] == ['conv_0', 'conv_1', 'dense_0']
  assert set(summary['t_star']) == {'R_mean', 'D_mean'}
  assert len(summary['per_class']['R_class']['t_star_mean']) == 10
  assert len(summary['layers']['R_mean']['inversion_fraction']) == 3
  assert run.history.R_class.shape == (2, 5, 10) and run.history.layer_D_mean.shape == (2, 5, 3)
  assert {'layers_vs_epoch.png', 'inversion_vs_epoch.png', 'R_plus_per_run.png'} <= set(
      os.listdir(workdir)
  )


def test_divergence_keeps_the_partial_history(mnist_dir, tmp_path, capsys):
  err = run_expect_error(
      capsys,
      data_dir=mnist_dir,
      workdir=str(tmp_path / 'run'),
      **dict(TINY, lr=1e12, activation='relu', init_scale=5.0),
  )
  assert 'training diverged' in err and 'lower --lr' in err and 'Partial history kept' in err
  partial = [p for p in os.listdir(tmp_path) if 'partial' in p]
  assert len(partial) == 1
  assert {'config.json', 'history'} <= set(os.listdir(tmp_path / partial[0]))
  assert io.load_run(str(tmp_path / partial[0])).history.num_epochs >= 0
  assert not (tmp_path / 'run').exists()


def test_running_out_of_memory_is_a_one_line_error_that_says_what_to_do(capsys):
  import jax.numpy as jnp

  from manifold_dynamics import cli

  with pytest.raises(SystemExit) as exit_info:
    with cli.one_line_errors('settings.py'):
      jnp.zeros((10**12,), jnp.float32).block_until_ready()  # 4 TB
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith('settings.py: error: out of memory (')
  assert '--seed_batch' in err
  with pytest.raises(ZeroDivisionError):  # any other error keeps its traceback
    with cli.one_line_errors('settings.py'):
      _ = 1 / 0


def test_missing_data_dir_files(tmp_path, capsys):
  err = run_expect_error(capsys, data_dir=str(tmp_path), workdir=str(tmp_path / 'run'), **TINY)
  assert 'has no train-images-idx3-ubyte' in err


def test_command_line_rejects_unknown_dataset_and_stray_arguments():
  script = os.path.join(ROOT, 'experiments', 'inversion.py')
  bad = subprocess.run(
      [sys.executable, script, '--dataset=imagenet'],
      capture_output=True,
      text=True,
      cwd=ROOT,
      check=False,
  )
  assert bad.returncode != 0 and 'mnist' in bad.stderr and 'imagenet' in bad.stderr
  stray = subprocess.run(
      [sys.executable, script, 'extra'], capture_output=True, text=True, cwd=ROOT, check=False
  )
  assert stray.returncode != 0 and 'unexpected arguments: extra' in stray.stderr


stragglers_main = load_experiment('stragglers')


def test_stragglers_from_a_run_and_by_training(mnist_dir, tmp_path):
  base = str(tmp_path / 'base')
  with flagsaver.flagsaver(data_dir=mnist_dir, workdir=base, lr=0.5, **dict(TINY, seeds=4)):
    inversion_main.main(['inversion.py'])
  out = str(tmp_path / 'stragglers')
  with flagsaver.flagsaver(
      from_run=base,
      architectures=['2x6', '3x6'],
      workdir=out,
      eps=['0.3', '0.1'],
      data_dir=mnist_dir,
  ):
    stragglers_main.main(['stragglers.py'])
  files = set(os.listdir(out))
  assert {
      'config.json',
      'summary.json',
      'stragglers.npz',
      'history_L3xH6',
      'stragglers_seed0.png',
      'stragglers_seed0.pdf',
      'z_vs_eps.png',
      'overlap_by_architecture.png',
  } <= files
  assert 'history_L2xH6' not in files  # the base run is read, not retrained
  summary = io.read_json(os.path.join(out, 'summary.json'))
  base_summary = io.read_json(os.path.join(base, 'summary.json'))
  assert summary['n_stragglers'] == base_summary['n_stragglers']
  for key in ('shared_fraction', 'overlap_mean', 'null_overlap_mean', 'z'):
    assert key in summary
  assert [r['eps'] for r in summary['z_vs_eps']] == [0.3, 0.1]
  assert [(r['run_0'], r['run_1']) for r in summary['architectures']] == [
      ('2x6', '2x6'),
      ('2x6', '3x6'),
      ('3x6', '3x6'),
  ]
  sets = io.load_stragglers(os.path.join(out, 'stragglers.npz'), split=True)
  assert all(np.all(s < 64) for s in sets)  # indices into the split: slice 0 of size 64


def test_stragglers_needs_two_seeds(mnist_dir, tmp_path, capsys):
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=str(tmp_path / 's'), architectures=['2x6'], **dict(TINY, seeds=1)
  ):
    with pytest.raises(SystemExit):
      stragglers_main.main(['stragglers.py'])
  assert 'needs --seeds >= 2' in capsys.readouterr().err


def test_bad_architecture_spec(mnist_dir, tmp_path, capsys):
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=str(tmp_path / 's'), architectures=['2by20'], **TINY
  ):
    with pytest.raises(SystemExit):
      stragglers_main.main(['stragglers.py'])
  assert 'DEPTHxWIDTH' in capsys.readouterr().err


prune_main = load_experiment('prune')


@pytest.mark.parametrize('task', ['parity', 'classes'])
def test_prune_writes_a_complete_run_directory(mnist_dir, tmp_path, task):
  base = str(tmp_path / 'base')
  with flagsaver.flagsaver(data_dir=mnist_dir, workdir=base, lr=0.5, task=task, **TINY):
    inversion_main.main(['inversion.py'])
  out = str(tmp_path / 'prune')
  with flagsaver.flagsaver(
      from_run=base,
      workdir=out,
      eps=['0.2', '0.05'],
      sigmas=['0', '1'],
      max_base_seeds=2,
      data_dir=mnist_dir,
  ):
    prune_main.main(['prune.py'])
  head = 'R_plus' if task == 'parity' else 'R_mean'  # ten classes: the K-class headline
  assert {
      'config.json',
      'history',
      'removals.npz',
      'summary.json',
      f'prune_{head}_vs_epoch.png',
      f'prune_{head}_vs_epoch.pdf',
      'prune_observables_vs_eps.png',
      'prune_test_error_vs_eps.png',
  } <= set(os.listdir(out))
  summary = io.read_json(os.path.join(out, 'summary.json'))
  base_summary = io.read_json(os.path.join(base, 'summary.json'))
  assert summary['observable'] == head
  for kind in ('stragglers', 'random', 'before_t_star', 'after_t_star'):
    assert len(summary[kind]['inversion']) == 2 and len(summary[kind]['test_error']) == 2
  assert summary['stragglers']['removed'] == base_summary['n_stragglers']
  assert summary['random']['removed'] == base_summary['n_stragglers']
  history = io.load_history(os.path.join(out, 'history'))
  assert history.num_seeds == 2 * 8  # 4 kinds + 2 x 2 eps kinds, x 2 base seeds
  with np.load(os.path.join(out, 'removals.npz')) as f:
    assert f['noisy_test_error'].shape == (16, 2)


def test_straggler_indices_point_into_the_split_for_any_slice(mnist_dir, tmp_path):
  """With --subset_index=1 the slice is examples [32, 64): no off-by-one between the two."""
  workdir = str(tmp_path / 'run')
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=workdir, subset_index=1, lr=0.5, **dict(TINY, train_size=32)
  ):
    inversion_main.main(['inversion.py'])
  run = io.load_run(workdir)
  np.testing.assert_array_equal(run.train_indices, np.arange(32, 64))
  path = os.path.join(workdir, 'stragglers.npz')
  for in_slice, in_split in zip(io.load_stragglers(path), io.load_stragglers(path, split=True)):
    np.testing.assert_array_equal(in_split, in_slice + 32)


def test_bad_eps_list(mnist_dir, tmp_path, capsys):
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=str(tmp_path / 'p'), eps=['0.1', 'x'], **TINY
  ):
    with pytest.raises(SystemExit):
      prune_main.main(['prune.py'])
  assert '--eps takes comma-separated numbers' in capsys.readouterr().err
  assert not (tmp_path / 'p').exists()


@pytest.mark.slow  # heavy end to end: make test-all
def test_matmul_precision_is_recorded_and_compared_seed_by_seed(mnist_dir, tmp_path):
  """--matmul_precision reaches config.json, and benchmarks/precision.py compares two runs
  that differ in it only (and refuses runs that differ in more)."""
  spec = importlib.util.spec_from_file_location(
      'benchmarks_precision', os.path.join(ROOT, 'benchmarks', 'precision.py')
  )
  precision = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(precision)
  runs = {}
  for name, overrides in (
      ('float32', {}),
      ('bfloat16', {'matmul_precision': 'bfloat16'}),
      ('other', {'lr': 0.4}),
  ):
    workdir = str(tmp_path / name)
    with flagsaver.flagsaver(
        data_dir=mnist_dir, workdir=workdir, **{**TINY, 'lr': 0.5, **overrides}
    ):
      inversion_main.main(['inversion.py'])
    runs[name] = io.load_run(workdir)
  assert runs['bfloat16'].config['train']['matmul_precision'] == 'bfloat16'
  assert runs['float32'].config['train']['matmul_precision'] == 'float32'
  report = precision.compare(runs['float32'], runs['bfloat16'])
  assert report['precisions'] == ['float32', 'bfloat16'] and report['seeds'] == 2
  assert 0 < report['R_plus']['curve_max_abs_difference'] < 0.05
  assert 0 <= report['stragglers_jaccard_same_seed'][0] <= 1
  same = precision.compare(runs['float32'], runs['float32'])
  assert same['phi_max_abs_difference'] == 0 and same['stragglers_jaccard_same_seed'][0] == 1
  with pytest.raises(UserError, match='differ in more than --matmul_precision'):
    precision.compare(runs['float32'], runs['other'])
