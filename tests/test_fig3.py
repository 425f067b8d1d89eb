"""Fig. 3 and Discussion entry points: each writes a complete sweep directory; bad inputs fail
in one line; a sweep resumes and rebuilds its summary from the complete points."""

import os
import shutil

import pytest
from absl.testing import flagsaver

from manifold_dynamics.records import io
from tests.conftest import write_mnist_like
from tests.test_experiments import load_experiment

scaling_main = load_experiment('scaling')
architectures_main = load_experiment('architectures')
activations_main = load_experiment('activations')
init_scale_main = load_experiment('init_scale')

TINY = dict(seeds=2, epochs=12, width=6, chunk_epochs=6, lr=0.5, bootstrap=10)


def sweep_files(path):
  return set(os.listdir(path)), set(os.listdir(os.path.join(path, 'points')))


def test_scaling_writes_a_complete_sweep_and_leaves_out_kmnist(tmp_path, capsys):
  data_dir = tmp_path / 'data'
  write_mnist_like(str(data_dir / 'mnist'))
  workdir = str(tmp_path / 'scaling')
  with flagsaver.flagsaver(
      datasets=['mnist', 'kmnist'],
      train_sizes=['32', '48', '64', '96'],
      data_dir=str(data_dir),
      workdir=workdir,
      **TINY,
  ):
    scaling_main.main(['scaling.py'])
  out = capsys.readouterr().out
  assert 'note: kmnist left out of the sweep' in out
  files, points = sweep_files(workdir)
  assert {
      'config.json',
      'summary.json',
      'phi_vs_train_size.png',
      'phi_vs_train_size.pdf',
      'observables_vs_train_error.png',
      'observables_vs_train_error.pdf',
  } <= files
  assert points == {'mnist-P32', 'mnist-P48', 'mnist-P64', 'mnist-P96'}
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  mnist = summary['datasets']['mnist']
  assert set(mnist['by_train_size']) == {'32', '48', '64', '96'}
  assert {'phi_mean', 'phi_std', 't_star_mean'} <= set(mnist['by_train_size']['32'])
  assert {'phi_inf', 'P0', 'gamma', 'converged', 'intervals'} <= set(mnist['fit'])
  config = io.read_json(os.path.join(workdir, 'points', 'mnist-P32', 'config.json'))
  assert config['train']['stop_after_inversion'] and config['train']['test_every'] == 0

  # Lost figures and summary come back from the complete points, without training.
  os.remove(os.path.join(workdir, 'summary.json'))
  shutil.rmtree(os.path.join(workdir, 'points', 'mnist-P96'))
  with flagsaver.flagsaver(
      datasets=['mnist', 'kmnist'],
      train_sizes=['32', '48', '64', '96'],
      data_dir=str(data_dir),
      workdir=workdir,
      collect_only=True,
      **TINY,
  ):
    scaling_main.main(['scaling.py'])
  assert 'training' not in capsys.readouterr().out
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert summary['points_complete'] == 3 and summary['points_total'] == 4


def run_error(main, capsys, **overrides):
  with flagsaver.flagsaver(**overrides):
    with pytest.raises(SystemExit) as exit_info:
      main(['x.py'])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1
  return err


@pytest.mark.parametrize(
    'flags_,message',
    [
        (dict(datasets=['mnist', 'imagenet']), "unknown dataset 'imagenet' in --datasets"),
        (dict(train_sizes=['1024', '70000']), 'P=70000 is larger than the mnist train split'),
        (dict(train_sizes=['1k']), '--train_sizes takes comma-separated integers'),
        (dict(num_tasks=2, task_index=2), r'--task_index must be in \[0, 2\)'),
    ],
)
def test_scaling_bad_inputs(tmp_path, capsys, flags_, message):
  flags_ = dict(dict(datasets=['mnist'], workdir=str(tmp_path / 's')), **flags_)
  assert message.replace('\\', '') in run_error(scaling_main.main, capsys, **flags_).replace(
      '\\', ''
  ) or pytest.fail(message)


def test_a_sweep_directory_of_another_grid_is_refused(mnist_dir, tmp_path, capsys):
  workdir = str(tmp_path / 'arch')
  base = dict(
      data_dir=mnist_dir,
      workdir=workdir,
      depths=['2'],
      widths=['6'],
      train_sizes=['32', '48', '64'],
      train_size=48,
      **TINY,
  )
  with flagsaver.flagsaver(**base):
    architectures_main.main(['architectures.py'])
  files, points = sweep_files(workdir)
  assert {
      'phi_inf_vs_params.png',
      'phi_vs_train_size.png',
      'overlap_by_architecture.png',
      'summary.json',
  } <= files
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  arch = summary['architectures']['2x6']
  assert arch['num_params'] == 785 * 6 + 7 * 2 and set(arch['by_train_size']) == {'32', '48', '64'}
  assert summary['overlap_train_size'] == 48 and summary['overlap'][0]['run_0'] == '2x6'
  config = io.read_json(os.path.join(workdir, 'points', 'L2xH6-P32', 'config.json'))
  assert config['train']['lr'] == 0.5  # explicit flags beat the sweep's lr 0.1
  err = run_error(architectures_main.main, capsys, **dict(base, widths=['6', '8']))
  assert 'holds a different grid' in err and '--workdir' in err


def test_architectures_default_lr_is_the_papers(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'arch')
  tiny = dict(TINY)
  tiny.pop('lr')
  with flagsaver.flagsaver(
      data_dir=mnist_dir,
      workdir=workdir,
      depths=['2', '3'],
      widths=['6'],
      train_sizes=['48'],
      **tiny,
  ):
    architectures_main.main(['architectures.py'])
  config = io.read_json(os.path.join(workdir, 'points', 'L3xH6-P48', 'config.json'))
  assert config['train']['lr'] == 0.1 and config['train']['model_settings']['depth'] == 3
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert 'needs at least 3 values of P' in summary['architectures']['2x6']['fit']['message']


@pytest.mark.slow  # heavy end to end: make test-all
def test_activations_and_init_scale_write_complete_sweeps(mnist_dir, tmp_path, capsys):
  workdir = str(tmp_path / 'act')
  with flagsaver.flagsaver(
      data_dir=mnist_dir,
      workdir=workdir,
      train_size=64,
      activations=['relu', 'tanh', 'identity'],
      **TINY,
  ):
    activations_main.main(['activations.py'])
  files, points = sweep_files(workdir)
  assert points == {'relu', 'tanh', 'identity'} and 'observables_vs_train_error.png' in files
  rows = io.read_json(os.path.join(workdir, 'summary.json'))['activations']
  assert {'phi_mean', 'phi_std', 't_star_mean', 'inversion_fraction_all'} <= set(rows['relu'])
  assert io.read_json(os.path.join(workdir, 'points', 'relu', 'config.json'))['train']['depth'] == 4
  err = run_error(
      activations_main.main,
      capsys,
      data_dir=mnist_dir,
      workdir=str(tmp_path / 'act2'),
      activations=['relu', 'swish'],
  )
  assert "unknown activation 'swish'" in err

  workdir = str(tmp_path / 'init')
  with flagsaver.flagsaver(
      data_dir=mnist_dir, workdir=workdir, train_size=64, init_scales=['0.5', '2', '8'], **TINY
  ):
    init_scale_main.main(['init_scale.py'])
  files, points = sweep_files(workdir)
  assert points == {'s0.5', 's2', 's8'}
  assert {'R_plus_vs_epoch.png', 'rise_vs_variance.png', 'summary.json'} <= files
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert summary['scales']['s2']['variance_times_width'] == pytest.approx(4 / 3)
  assert summary['scales']['s8']['epochs_trained'] == 12  # the full run, no stop rule
  err = run_error(
      init_scale_main.main,
      capsys,
      data_dir=mnist_dir,
      workdir=str(tmp_path / 'init2'),
      init_scales=['1', '-2'],
  )
  assert '--init_scales must be positive' in err


@pytest.mark.parametrize(
    'main,extra,points',
    [
        (scaling_main, ['--datasets=mnist', '--train_sizes=48,64,96'], 3),  # sizes: tiny data
        pytest.param(  # 2 depths x 3 P
            architectures_main,
            ['--train_sizes=48,64,96', '--train_size=64'],
            6,
            marks=pytest.mark.slow,
        ),
        pytest.param(activations_main, ['--train_size=64'], 5, marks=pytest.mark.slow),
        (init_scale_main, ['--train_size=64'], 3),
    ],
    ids=['scaling', 'architectures', 'activations', 'init_scale'],
)
def test_quick_writes_a_complete_sweep_directory(mnist_dir, tmp_path, main, extra, points):
  workdir = str(tmp_path / 'quick')
  with flagsaver.flagsaver():
    from absl import flags  # pylint: disable=g-import-not-at-top

    flags.FLAGS(
        [
            'x.py',
            '--quick',
            f'--data_dir={mnist_dir}',
            f'--workdir={workdir}',
            '--epochs=8',
            '--width=6',
            '--bootstrap=5',
        ]
        + extra
    )
    main.main(['x.py'])
  files, names = sweep_files(workdir)
  assert 'summary.json' in files and any(f.endswith('.png') for f in files)
  assert len(names) == points
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert summary['points_complete'] == summary['points_total'] == points
  config = io.read_json(os.path.join(workdir, 'config.json'))
  assert all(p['train']['seeds'] == 4 for p in config['points'])  # the --quick value
