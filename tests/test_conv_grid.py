"""The conv grid of issue 27: the learning-rate rule of SPEC §8, the grid's conv cells measured
flattened and pooled and read after the transient, and their pruning at the clearest layer."""

import os

import numpy as np
import pytest
from absl.testing import flagsaver

from manifold_dynamics.analysis import grid
from manifold_dynamics.analysis import learning_rate as rule
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from tests.conftest import write_mnist_like
from tests.test_experiments import load_experiment
from tests.test_inversion import make_history

learning_rate_main = load_experiment('learning_rate')
settings_main = load_experiment('settings')


def test_the_loss_must_fall_up_to_t_star_within_float_noise():
  loss = np.array([[1.0, 0.9, 0.8, 0.8 * (1 + 1e-6), 0.7, 0.75, 0.6]])
  assert rule.first_rise(loss, [6])[0] == 4  # the float-noise rise at epoch 2 is no rise
  assert rule.first_rise(loss, [4])[0] == -1  # after t*, the loss may do what it likes
  assert rule.first_rise(loss, [6], noise=0.0)[0] == 2


def test_the_horizon_is_the_latest_inverting_t_star_else_the_end():
  t = np.arange(60.0)
  R = 1 - 0.3 * np.exp(-(((t - 20) / 6) ** 2))
  flat = np.linspace(1.0, 0.5, 60)
  history = make_history(np.stack([R, flat]), R_minus=np.stack([flat, flat]))
  until = rule.horizon(history)
  assert until[1] == history.num_epochs  # nothing inverts in seed 1 (its D: 2 - R+, flat)
  assert 18 <= until[0] <= 22  # R+ (and D = 2 - R+) turn at epoch 20


def test_the_largest_lr_that_passes_on_every_dataset():
  ok, bad = {'passes': True}, {'passes': False}
  checks = {
      ('cnn', 'mnist', 0.2): bad,
      ('cnn', 'mnist', 0.1): ok,
      ('cnn', 'cifar10', 0.2): bad,
      ('cnn', 'cifar10', 0.1): bad,
      ('cnn', 'cifar10', 0.05): ok,
      ('cnn', 'mnist', 0.05): ok,
      ('resnet', 'mnist', 0.2): bad,
  }
  chosen = rule.choose(checks)
  assert chosen['cnn']['lr'] == 0.05 and chosen['cnn']['passes']['mnist'] == [0.1, 0.05]
  assert chosen['cnn']['by_dataset'] == {'mnist': 0.1, 'cifar10': 0.05}
  assert chosen['resnet']['lr'] is None
  # a smaller lr is trained only where the larger one failed: mnist's 0.1 stands for 0.05
  del checks[('cnn', 'mnist', 0.05)]
  assert rule.choose(checks)['cnn']['lr'] == 0.05


def test_the_learning_rate_study_end_to_end(mnist_dir, tmp_path):
  workdir = str(tmp_path / 'lr')
  with flagsaver.flagsaver(
      quick=True, data_dir=mnist_dir, workdir=workdir, models=['cnn'], datasets=['mnist'],
      lrs=['0.02', '0.2'], cnn_channels=['2'], cnn_width=4, train_size=48, seeds=2, epochs=8,
      chunk_epochs=4,
  ):  # fmt: skip
    learning_rate_main.main(['learning_rate.py'])
  summary = io.read_json(os.path.join(workdir, 'summary.json'))
  assert summary['candidates'] == [0.2, 0.02]
  first = summary['points']['cnn-mnist-lr0.2']
  assert set(first) >= {'passes', 'horizon', 'first_rise'}
  # the smaller lr is trained only where the larger failed
  trained = os.path.isdir(os.path.join(workdir, 'points', 'cnn-mnist-lr0.02'))
  assert trained != first['passes'] and ('cnn-mnist-lr0.02' in summary['skipped']) != trained
  assert summary['chosen']['cnn']['lr'] in (0.2, 0.02, None)
  config = io.read_json(os.path.join(workdir, 'points', 'cnn-mnist-lr0.2', 'config.json'))
  assert config['train']['layers'] == 'all,all:pooled'
  assert config['train']['t_star_rule'] == 'after_transient'
  assert os.path.exists(os.path.join(workdir, 'loss_vs_epoch.png'))


def test_a_conv_cell_read_after_the_transient_both_ways_and_pruned(tmp_path, capsys):
  sweep, noisy = str(tmp_path / 'grid'), str(tmp_path / 'noisy_mnist')
  write_mnist_like(noisy, flipped=0.15)  # 15% of labels flipped: the CNN's curves turn
  flags = dict(
      data_dir=noisy, workdir=sweep, models=['mlp', 'cnn'], datasets=['mnist'],
      tasks=['parity'], batches=['0'], train_size=64, epochs=48, seeds=2, chunk_epochs=16,
      cnn_channels=['2', '3'], cnn_width=4, width=6, model_lrs=['cnn:0.3'], pooled_too=True,
      t_star_rule='after_transient', stop_after_inversion=False, prune=True,
      prune_base_seeds=2, test_every=0, prune_cells=['cnn-mnist-parity-GD'], prune_around=False,
  )  # fmt: skip
  with flagsaver.flagsaver(**flags):
    settings_main.main(['settings.py'])
  rows = {r['cell']: r for r in io.read_json(os.path.join(sweep, 'summary.json'))['rows']}
  cnn, mlp = rows['cnn-mnist-parity-GD'], rows['mlp-mnist-parity-GD']
  assert cnn['lr'] == 0.3 and mlp['lr'] == 0.2 and cnn['t_star_rule'] == 'after_transient'
  assert list(cnn['by_layer']) == [
      'conv_0', 'conv_1', 'dense_0', 'conv_0:pooled', 'conv_1:pooled'
  ]  # fmt: skip
  assert cnn['clearest']['layer'] in cnn['by_layer']
  assert cnn['last_layer']['layer'] == 'dense_0'  # the last flattened one
  for brief in cnn['by_layer'].values():
    assert set(brief['curves']) == {'R_plus', 'R_minus', 'D'}
    assert set(brief['curves']['D']['transient']) == {'fraction', 'epoch_mean', 'height_mean'}
  assert set(cnn['transient']) == {'R_plus', 'R_minus', 'D'}
  # every layer read by the cell's rule: in the run's summary.json and in the grid's row
  layers = io.read_json(os.path.join(sweep, 'points', 'cnn-mnist-parity-GD', 'summary.json'))
  for k in ('R_plus', 'R_minus', 'D'):
    by_rule = [brief['curves'][k]['inversion_fraction'] for brief in cnn['by_layer'].values()]
    assert layers['layers'][k]['rule'] == 'after_transient'
    assert layers['layers'][k]['inversion_fraction'] == by_rule
    assert cnn['inversion_fraction_by_layer'][k] == by_rule
  pruned = io.read_json(os.path.join(sweep, 'prune', 'cnn-mnist-parity-GD', 'summary.json'))
  assert grid.inverts_somewhere(cnn)  # conv_1's D turns in both seeds
  assert pruned['layer'] == cnn['clearest']['layer'] and pruned['observable'] in cnn['transient']
  assert pruned['t_star_rule'] == 'after_transient'
  assert set(pruned['kinds']) == {'stragglers', 'random'}  # --noprune_around
  assert not os.path.exists(os.path.join(sweep, 'prune', 'mlp-mnist-parity-GD'))  # not named
  with pytest.raises(UserError, match='--model_lrs takes model:lr pairs'):
    settings_main.model_lrs(['cnn=0.1'])
  with pytest.raises(UserError, match='needs a model of mlp, cnn, resnet'):
    settings_main.model_lrs(['vgg:0.1'])
  assert grid.last_flattened(['conv_0', 'dense_0', 'conv_0:pooled']) == 1
  for row, cell in ((cnn, 'cnn'), (mlp, 'mlp')):  # SPEC §8's lr rule, on every GD cell's run
    run = io.load_run(os.path.join(sweep, 'points', f'{cell}-mnist-parity-GD'))
    assert row['lr_check'] == rule.check(run.history)
  table = open(os.path.join(sweep, 'table.md')).read()
  assert (
      f'| cnn-mnist-parity-GD | {grid.lr_cell(cnn)} |' in table
      and 'conv_0 ' in table.split('clearest layer')[1]
  )
  capsys.readouterr()
  os.remove(os.path.join(sweep, 'layers_cnn.png'))  # drawn by the sweep; --tabulate redraws it
  with flagsaver.flagsaver(tabulate=[sweep], models=['mlp', 'cnn'], datasets=['mnist']):
    settings_main.main(['settings.py'])
  said = '; clearest ' if grid.inverts_somewhere(cnn) else '; no layer inverts'
  assert said in capsys.readouterr().out
  assert os.path.exists(os.path.join(sweep, 'layers_cnn.png'))
  # --prune_at: S(t*) read where the user says, checked against the cell's run before anything
  # of its pruning is written
  mlp_pruned = os.path.join(sweep, 'prune', 'mlp-mnist-parity-GD')
  at = dict(flags, prune_cells=['mlp-mnist-parity-GD'], prune_at='hidden_1:D')
  with flagsaver.flagsaver(**at), pytest.raises(SystemExit):
    settings_main.main(['settings.py'])
  assert 'mlp-mnist-parity-GD measures the layers hidden and' in capsys.readouterr().err
  assert not os.path.exists(mlp_pruned)
  with flagsaver.flagsaver(**dict(at, prune_at='hidden:D')):
    settings_main.main(['settings.py'])
  pruned = io.read_json(os.path.join(mlp_pruned, 'summary.json'))
  assert (pruned['layer'], pruned['observable']) == ('hidden', 'D')
  with pytest.raises(UserError, match='--prune_at takes LAYER:CURVE'):
    settings_main.prune_at('D')
  assert settings_main.prune_at('conv_1:pooled:D_mean') == ('conv_1:pooled', 'D_mean')


def test_a_cell_whose_loss_rises_before_t_star_says_so_beside_its_lr():
  check = {'passes': False, 'seeds_failing': 2, 'first_rise': [-1, 448, 406]}
  assert grid.lr_cell({'lr': 0.05, 'lr_check': check}) == (
      '0.05 (loss rises before t* in 2/3 seeds, from epoch 406)'
  )
  assert grid.lr_cell({'lr': 0.05, 'lr_check': dict(check, passes=True)}) == '0.05'
  assert grid.lr_cell({'lr': 0.00625}) == '0.00625'  # mini-batch cells: no full-batch rule


def test_the_clearest_layer_counts_only_inversions_the_loss_fell_up_to():
  import dataclasses  # pylint: disable=g-import-not-at-top

  t = np.arange(60.0)
  dip = 1 - 0.3 * np.exp(-(((t - 40) / 6) ** 2))  # R+ turns at epoch 40
  early = 1 - 0.3 * np.exp(-(((t - 15) / 4) ** 2))  # at epoch 15
  flat = np.linspace(1.0, 0.5, 60)
  loss = np.linspace(1.0, 0.4, 60)
  loss[31:] += 0.05  # the loss rises after epoch 30: a full-batch run past SPEC §8's rule
  late = dataclasses.replace(make_history(np.stack([dip, dip]), R_minus=np.stack([flat, flat]),
                                          D=np.stack([flat + 1, flat + 1])),
                             loss=np.stack([loss, loss]))  # fmt: skip
  until = rule.readable_until(late)
  assert until.tolist() == [30, 30]
  brief = grid.layer_brief(late, 'after_transient', until)
  assert brief['curves']['R_plus']['inversion_fraction'] == 1.0
  assert brief['curves']['R_plus']['readable_fraction'] == 0.0  # t* 40, after the rise
  assert grid.layer_brief(late, 'after_transient')['curves']['R_plus']['readable_fraction'] == 1.0
  half = dataclasses.replace(late, R_plus=np.stack([early, flat]).astype(np.float32))
  by_layer = {'stem': brief, 'stage1': grid.layer_brief(half, 'after_transient', until)}
  assert by_layer['stage1']['curves']['R_plus']['readable_fraction'] == 0.5
  assert grid.clearest(by_layer) == 'stage1'  # one readable seed beats two late "inversions"
  assert grid.clearest({**by_layer, 'stem': grid.layer_brief(late, 'after_transient')}) == 'stem'
  # The pruning's target: where the inversion is clearest, or nowhere if nothing inverts before
  # the loss rises (then S(t*) marks no inversion, and the cell is not pruned).
  layers = {
      k: np.stack([getattr(late, k), getattr(half, k)], -1) for k in ('R_plus', 'R_minus', 'D')
  }
  two = dataclasses.replace(late, **{f'layer_{k}': v for k, v in layers.items()})
  assert grid.prune_target(two, ['stem', 'stage1'], 'after_transient', True) == ('stage1', 'R_plus')
  only_late = dataclasses.replace(two, layer_R_plus=layers['R_plus'][..., :1].repeat(2, -1))
  assert grid.prune_target(only_late, ['stem', 'stage1'], 'after_transient', True) is None
  assert grid.prune_target(only_late, ['stem', 'stage1'], 'after_transient', False) == (
      'stem',
      'R_plus',
  )  # mini-batch runs are not held to the full-batch lr rule: every inversion counts


def test_a_z_that_rounds_to_zero_has_no_sign():
  assert grid._z({'z_null': -0.3}) == '0' and grid._z({'z_null': -0.6}) == '-1'
  assert grid._z({'z_null': 29.4}) == '29' and grid._z(None) == '-'


def test_a_cell_in_which_no_layer_inverts_names_no_clearest_layer():
  def brief(*fractions):
    names = ('R_plus', 'R_minus', 'D')
    return {'curves': {k: {'inversion_fraction': f} for k, f in zip(names, fractions)}}

  curve = {'inversion_fraction': 0, 'phi_mean': 0.449, 'n_stragglers_mean': 460, 'stability': None}
  row = {
      'cell': 'resnet-mnist-parity-GD', 'lr': 0.02, 'phi_mean': 0.406,
      'inversion_fraction': {'R_plus': 0.0, 'R_minus': 0.0, 'D': 0.0},
      'transient': {k: {'fraction': 0.0} for k in ('R_plus', 'R_minus', 'D')},
      'by_layer': {'stem': brief(0, 0, 0), 'pool': brief(0, 0, 0)},
      'clearest': {'layer': 'pool', 'curves': {'R_plus': curve}},
  }  # fmt: skip
  cells = [grid.Cell('resnet', 'mnist', 'parity', 0)]
  assert '| 0.406 (0/0/0%; no layer inverts) |' in grid.matrix([row], cells)
  assert '| none inverts; nearest pool (R_plus 0%): 0.449, 460,' in grid.layer_table([row])
  row['by_layer']['pool'] = brief(0, 0.2, 0)  # one seed's R- at one layer: a clearest layer
  assert '| 0.406 (0/0/0%; clearest pool 0/20/0%) |' in grid.matrix([row], cells)
  assert '| pool (R_plus 0%): 0.449' in grid.layer_table([row])


def test_the_gpu_scripts_quick_form_runs_on_a_cpu(mnist_dir, tmp_path):
  """benchmarks/gpu.sh --quick all: the throughput benchmark, the grid and its pruning."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, GPU_OUT=str(tmp_path / 'gpu'), GPU_DATA_DIR=mnist_dir, PY=sys.executable)
  out = subprocess.run(
      ['bash', os.path.join(root, 'benchmarks', 'gpu.sh'), '--quick', 'all'],
      env=env,
      capture_output=True,
      text=True,
      cwd=root,
  )
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  assert 'grid: complete (2 2)' in out.stdout
  results = io.read_json(str(tmp_path / 'gpu' / 'quick' / 'throughput.json'))
  assert {r['conv'] for r in results['cnn']} == {'xla', 'im2col'} and results['engine']
  # Past the first size a CPU times only the convolutions within 2x of the best rate there.
  first = [r for r in results['cnn'] if r['train_size'] == 64]
  best = max(r['in_scan_seed_epochs_per_s'] for r in first)
  contenders = {r['conv'] for r in first if 2 * r['in_scan_seed_epochs_per_s'] >= best}
  assert {r['conv'] for r in results['cnn'] if r['train_size'] == 96} == contenders
  rows = io.read_json(str(tmp_path / 'gpu' / 'quick' / 'settings' / 'summary.json'))['rows']
  config = io.read_json(
      str(
          tmp_path / 'gpu' / 'quick' / 'settings' / 'points' / 'cnn-mnist-parity-GD' / 'config.json'
      )
  )
  assert len(rows) == 2 and config['train']['model_settings']['conv_impl'] == 'xla'
  # then the conv cell's pruning, at its clearest layer; in 6 epochs nothing inverts, so the
  # cell is left unpruned, with a line that says why
  assert 'prune: complete' in out.stdout
  assert 'cnn-mnist-parity-GD: not pruned, as no curve inverts at any layer' in out.stdout
  assert not os.path.exists(
      tmp_path / 'gpu' / 'quick' / 'settings' / 'prune' / 'cnn-mnist-parity-GD'
  )


def test_the_layer_map_draws_parity_and_ten_class_cells_in_the_same_panels():
  from manifold_dynamics.plotting import settings as plots  # pylint: disable=g-import-not-at-top

  def row(cell, fractions):
    by_layer = {
        layer: {'curves': {c: {'inversion_fraction': f} for c, f in curves.items()}}
        for layer, curves in fractions.items()
    }
    return {'cell': cell, 'by_layer': by_layer, 'clearest': {'layer': 'dense_0'}}

  rows = [
      row(
          'parity',
          {'conv_0': dict(R_plus=0, R_minus=0, D=1), 'dense_0': dict(R_plus=1, R_minus=1, D=1)},
      ),
      row('classes', {'conv_0': dict(R_mean=0.2, D_mean=0.8), 'dense_0': dict(R_mean=1, D_mean=0)}),
  ]
  fig = plots.layers_by_cell(rows)
  axes = fig.axes
  assert [ax.get_title() for ax in axes] == ['R_plus or R_mean', 'R_minus', 'D or D_mean']
  shown = [ax.images[0].get_array() for ax in axes]
  np.testing.assert_array_equal(shown[0], [[0, 1], [0.2, 1]])
  np.testing.assert_array_equal(shown[2], [[1, 1], [0.8, 0]])
  assert np.ma.getmaskarray(shown[1])[1].all() or np.isnan(shown[1][1]).all()
  # each cell's clearest layer framed, in the panels where the cell has a curve: a ten-class
  # cell has no R_minus
  assert [len(ax.patches) for ax in axes] == [2, 1, 2]
  rows.append(row('none', {'conv_0': dict(R_plus=0, R_minus=0, D=0), 'dense_0': dict(D=0)}))
  assert [len(ax.patches) for ax in plots.layers_by_cell(rows).axes] == [2, 1, 2]  # not this one


def test_a_pruned_cell_says_which_inversions_came_once_its_loss_rose():
  def kind(inversion, before):
    return dict(
        removed=[10, 12], inversion=inversion, inversion_before_loss_rise=before,
        test_error=[0.2, 0.3], noisy_test_error={'0': [0.2, 0.3], '1.5': [0.4, 0.5]},
    )  # fmt: skip

  summary = dict(observable='D', layer='stage1_block0', base_seeds=2, sigmas=[0.0, 1.5])
  late = grid.prune_row(
      dict(
          summary,
          stragglers=kind([True, True], [False, True]),
          random=kind([True, True], [True, True]),
      )
  )
  assert late['stragglers']['before_loss_rise_fraction'] == 0.5
  assert ' 100%, 100% (50%, 100% before the loss rose) |' in grid._prune_cells(late)
  same = grid.prune_row(
      dict(
          summary,
          stragglers=kind([False, True], [False, True]),
          random=kind([True, True], [True, True]),
      )
  )
  assert grid._prune_cells(same).startswith(' 50%, 100% | ')  # nothing came late: as before
  older = {
      k: {n: v for n, v in kind([True, False], []).items() if n != 'inversion_before_loss_rise'}
      for k in ('stragglers', 'random')
  }
  assert grid.prune_row(dict(summary, **older))['random']['before_loss_rise_fraction'] is None
