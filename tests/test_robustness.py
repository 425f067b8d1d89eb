"""Fig. 1a, 1c, 1d, 1e-f entry points: complete run directories, their contracts, bad inputs."""

import dataclasses
import os

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.data import load_task
from manifold_dynamics.data.task import Task, permute_labels
from manifold_dynamics.engine.train import TrainData, fit
from manifold_dynamics.records import io
from tests.test_experiments import load_experiment

before_after_main = load_experiment('before_after')
subsampling_main = load_experiment('subsampling')
optimizers_main = load_experiment('optimizers')
random_labels_main = load_experiment('random_labels')
if not flags.FLAGS.is_parsed():
  flags.FLAGS(['test'])

TINY = dict(train_size=32, epochs=20, seeds=2, chunk_epochs=10, width=6, lr=0.5)
FIGURE = ('png', 'pdf')


def run_main(module, **overrides):
  with flagsaver.flagsaver(**overrides):
    module.main([f'{module.__name__}.py'])


def run_expect_error(capsys, module, **overrides):
  with pytest.raises(SystemExit) as exit_info:
    run_main(module, **overrides)
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and ': error: ' in err
  return err


def tiny_task(mnist_dir):
  return load_task(
      DataConfig(train_size=TINY['train_size'], data_dir=mnist_dir), log=lambda _: None
  )


def assert_figures(workdir, *names):
  files = set(os.listdir(workdir))
  for name in names:
    assert {f'{name}.{ext}' for ext in FIGURE} <= files, name


def test_permuted_labels_keep_class_counts_and_images():
  rng = np.random.default_rng(0)
  y = np.where(rng.random(101) < 0.3, 1, -1).astype(np.int32)
  task = Task(
      rng.random((101, 5)).astype(np.float32),
      y,
      np.zeros((3, 5), np.float32),
      np.array([1, -1, 1], np.int32),
      np.arange(101),
  )
  shuffled, permutation = permute_labels(task, np.random.default_rng(1))
  assert sorted(permutation.tolist()) == list(range(101))
  np.testing.assert_array_equal(shuffled.y_train, y[permutation])
  assert np.sum(shuffled.y_train == 1) == np.sum(y == 1)
  assert np.mean(shuffled.y_train != y) > 0.2  # labels really moved
  np.testing.assert_array_equal(shuffled.x_train, task.x_train)
  np.testing.assert_array_equal(shuffled.y_test, task.y_test)


@pytest.mark.slow  # heavy end to end: make test-all
def test_before_after_groups_match_one_fit(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  run_main(
      before_after_main,
      data_dir=mnist_dir,
      workdir=workdir,
      seeds_per_group=3,
      **dict(TINY, seeds=4),
  )
  assert_figures(workdir, 'before_after')
  assert {'config.json', 'samples.npz', 'summary.json'} <= set(os.listdir(workdir))
  with np.load(os.path.join(workdir, 'samples.npz')) as f:
    samples = dict(f)
  # Groups of 3 + 1 seeds are the same runs as one vmapped fit of 4 seeds.
  cfg = TrainConfig(**{k: v for k, v in TINY.items() if k != 'train_size'})
  history = fit(
      dataclasses.replace(cfg, seeds=4), TrainData.from_task(tiny_task(mnist_dir)), log=None
  )
  for name in ('R_plus', 'R_minus', 'D', 'train_error'):
    np.testing.assert_allclose(samples[f'before_{name}'], getattr(history, name)[:, 0], rtol=1e-5)
    np.testing.assert_allclose(
        samples[f'after_{name}'], getattr(history, name)[:, -1], rtol=1e-4, atol=1e-6
    )
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert summary['seeds'] == 4
  assert summary['before']['R_plus']['mean'] == pytest.approx(samples['before_R_plus'].mean())
  assert len(samples['phi']) == 4 and samples['t_star_R_plus'].shape == (4,)


def test_before_after_divergence_is_one_line(mnist_dir, tmp_path, capsys):
  err = run_expect_error(
      capsys,
      before_after_main,
      data_dir=mnist_dir,
      workdir=str(tmp_path / 'run'),
      **dict(TINY, lr=1e12, activation='relu', init_scale=5.0),
  )
  assert 'training diverged' in err and 'lower --lr' in err
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow  # heavy end to end: make test-all
def test_subsampling_trains_each_slice(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  run_main(subsampling_main, data_dir=mnist_dir, workdir=workdir, num_subsets=3, **TINY)
  assert_figures(workdir, 'observables_vs_train_error')
  for k in range(3):
    np.testing.assert_array_equal(
        io.load_train_indices(os.path.join(workdir, f'history_subset{k}')),
        np.arange(32 * k, 32 * (k + 1)),
    )
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert list(summary['subsets']) == ['subset0', 'subset1', 'subset2']
  phis = [s['phi_mean'] for s in summary['subsets'].values()]
  assert summary['phi_mean_over_subsets'] == pytest.approx(np.mean(phis))


def test_subsampling_refuses_too_many_slices_before_training(mnist_dir, tmp_path, capsys):
  err = run_expect_error(
      capsys,
      subsampling_main,
      data_dir=mnist_dir,
      workdir=str(tmp_path / 'run'),
      num_subsets=4,
      **TINY,
  )
  assert '--num_subsets <= 3' in err  # 96 examples: 3 slices of 32
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow  # heavy end to end: make test-all
def test_optimizers_summary_has_one_key_per_setting(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  settings = ['sgd_lr0.2', 'adam_lr0.005', 'sgd_wd0.05', 'momentum0.9_lr0.2']
  run_main(
      optimizers_main,
      data_dir=mnist_dir,
      workdir=workdir,
      settings=settings,
      **{k: v for k, v in TINY.items() if k != 'lr'},
  )
  assert_figures(workdir, 'observables_vs_train_error')
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  for name in settings:
    assert os.path.isdir(os.path.join(workdir, f'history_{name}'))
    row = summary[name]
    assert {'phi_mean', 'phi_std', 't_star_mean'} <= set(row)
    assert row['phi_mean'] == pytest.approx(np.mean(row['phi']))
    assert row['t_star_mean'] == pytest.approx(np.mean(row['t_star']['R_plus']))
  config = io.read_json(os.path.join(workdir, 'config.json'))
  assert config['settings']['momentum0.9_lr0.2'] == dict(optimizer='momentum', momentum=0.9, lr=0.2)
  # The settings really differ: different optimisers give different trajectories.
  a = io.load_history(os.path.join(workdir, 'history_sgd_lr0.2'))
  b = io.load_history(os.path.join(workdir, 'history_adam_lr0.005'))
  np.testing.assert_array_equal(a.R_plus[:, 0], b.R_plus[:, 0])  # same init
  assert not np.allclose(a.R_plus[:, -1], b.R_plus[:, -1])


@pytest.mark.parametrize(
    'overrides, message',
    [
        (dict(lr=0.1), '--lr cannot be set here'),
        (dict(settings=['adam_lr0.3']), 'unknown optimiser setting(s) adam_lr0.3'),
    ],
)
def test_optimizers_bad_settings(mnist_dir, tmp_path, capsys, overrides, message):
  base = {k: v for k, v in TINY.items() if k != 'lr'}
  with flagsaver.flagsaver():
    argv = ['optimizers.py', f'--data_dir={mnist_dir}', f'--workdir={tmp_path / "run"}']
    argv += [
        f'--{k}={",".join(v) if isinstance(v, list) else v}'
        for k, v in {**base, **overrides}.items()
    ]
    flags.FLAGS(argv)
    with pytest.raises(SystemExit):
      optimizers_main.main(['optimizers.py'])
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and message in err
  assert not (tmp_path / 'run').exists()


def test_random_labels_reports_inversion_per_seed(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  run_main(random_labels_main, data_dir=mnist_dir, workdir=workdir, **dict(TINY, seeds=3))
  assert_figures(workdir, 'random_labels_vs_epoch', 'observables_vs_train_error')
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  for name in ('true_labels', 'random_labels'):
    row = summary[name]
    assert len(row['inversion']) == 3 and all(isinstance(v, bool) for v in row['inversion'])
    by_obs = row['inversion_by_observable']
    assert row['inversion'] == [any(v) for v in zip(*by_obs.values())]
  true_y = tiny_task(mnist_dir).y_train
  with np.load(os.path.join(workdir, 'random_labels.npz')) as f:
    assert sorted(f['permutation'].tolist()) == list(range(32))
    np.testing.assert_array_equal(f['y_train'], true_y[f['permutation']])
  for name in ('true_labels', 'random_labels'):
    assert io.load_history(os.path.join(workdir, f'history_{name}')).R_plus.shape == (3, 21)


def test_before_after_figure_draws_density_contours():
  import matplotlib.pyplot as plt

  from manifold_dynamics.plotting import robustness as plots

  rng = np.random.default_rng(0)
  before = {
      k: rng.normal(m, 0.01, 60) for k, m in (('R_plus', 0.99), ('R_minus', 0.98), ('D', 0.3))
  }
  after = {k: rng.normal(m, 0.01, 60) for k, m in (('R_plus', 0.92), ('R_minus', 0.9), ('D', 0.8))}
  fig = plots.before_after(before, after, 'test')
  left, right = fig.axes
  assert len(left.collections) >= 4  # two scatters and at least one contour set each
  assert [t.get_text() for t in right.get_legend().get_texts()] == [
      f'initialisation: {before["D"].mean():.3f} $\\pm$ {before["D"].std():.3f}',
      f'after training: {after["D"].mean():.3f} $\\pm$ {after["D"].std():.3f}',
  ]
  plt.close(fig)
  # Points on a line (no 2-D density) still plot, without contours.
  line = {'R_plus': np.linspace(0.9, 1, 20), 'R_minus': np.linspace(0.9, 1, 20), 'D': np.ones(20)}
  fig = plots.before_after(line, line)
  assert len(fig.axes[0].collections) == 2
  plt.close(fig)
