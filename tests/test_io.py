"""The run directory contract: refuse, stage, commit, round-trip."""

import dataclasses
import os

import numpy as np
import pytest

from manifold_dynamics.errors import UserError
from manifold_dynamics.records import io
from tests.test_inversion import make_history


def test_refuses_an_existing_run(tmp_path):
  path = tmp_path / 'run'
  path.mkdir()
  (path / 'summary.json').write_text('{}')
  with pytest.raises(UserError, match='already exists; pass --overwrite'):
    io.RunDir(str(path))


def test_overwrite_replaces_only_on_commit(tmp_path):
  path = tmp_path / 'run'
  path.mkdir()
  (path / 'old.txt').write_text('earlier result')
  run = io.RunDir(str(path), overwrite=True)
  io.write_json(run.file('config.json'), {'a': 1})
  assert (path / 'old.txt').exists()  # nothing lost until the new run is complete
  run.commit()
  assert not (path / 'old.txt').exists()
  assert io.read_json(str(path / 'config.json')) == {'a': 1}
  assert [p for p in os.listdir(tmp_path) if p != 'run'] == []


def test_an_unfinished_run_with_other_settings_restarts_only_if_nothing_was_trained(tmp_path):
  path = str(tmp_path / 'run')
  io.RunDir(path).begin({'train': {'seed_batch': 0}})  # then out of memory in the first chunk
  again = io.RunDir(path)
  assert again.resuming
  again.begin({'train': {'seed_batch': 2}})  # nothing to lose: starts afresh
  assert io.read_json(again.file('config.json')) == {'train': {'seed_batch': 2}}
  os.makedirs(again.file('history'))
  open(os.path.join(again.file('history'), 'checkpoint.npz'), 'wb').close()  # trained
  with pytest.raises(UserError, match=r'unfinished run with train.seed_batch = 2 \(now 4\)'):
    io.RunDir(path).begin({'train': {'seed_batch': 4}})
  assert os.path.exists(os.path.join(again.file('history'), 'checkpoint.npz'))


def test_history_and_stragglers_round_trip(tmp_path):
  masks = np.random.default_rng(0).random((2, 5, 11)) < 0.3
  history = make_history(np.random.default_rng(1).random((2, 5)), masks=masks)
  train_indices = np.arange(100, 111)
  io.save_history(str(tmp_path / 'history.npz'), history, train_indices)
  loaded = io.load_history(str(tmp_path / 'history.npz'))
  np.testing.assert_array_equal(loaded.mistakes(), masks)
  np.testing.assert_array_equal(loaded.R_plus, history.R_plus)
  sets = [np.array([1, 4]), np.array([], np.int64)]
  io.save_stragglers(str(tmp_path / 's.npz'), sets, train_indices, np.array([2, 3]))
  assert [s.tolist() for s in io.load_stragglers(str(tmp_path / 's.npz'))] == [[1, 4], []]
  assert [s.tolist() for s in io.load_stragglers(str(tmp_path / 's.npz'), split=True)] == [
      [101, 104],
      [],
  ]


def test_json_is_standard_non_finite_floats_become_null(tmp_path):
  path = str(tmp_path / 'summary.json')
  io.write_json(path, {'z': float('nan'), 'rows': [{'a': float('inf'), 'b': 1.5}], 't': (1, 2)})
  text = open(path).read()
  assert 'NaN' not in text and 'Infinity' not in text
  assert io.read_json(path) == {'z': None, 'rows': [{'a': None, 'b': 1.5}], 't': [1, 2]}


def test_a_history_read_at_one_of_its_layers():
  rng = np.random.default_rng(0)
  history = make_history(rng.random((2, 5)))
  with pytest.raises(ValueError, match='no per-layer observables'):
    history.at_layer(0)
  layers = {k: rng.random((2, 5, 3)) for k in ('layer_R_plus', 'layer_R_minus', 'layer_D')}
  history = dataclasses.replace(history, **layers)
  second = history.at_layer(1)
  for k in ('R_plus', 'R_minus', 'D'):
    np.testing.assert_array_equal(getattr(second, k), layers[f'layer_{k}'][..., 1])
  assert second.layer_R_plus is None and second.observables == history.observables
  np.testing.assert_array_equal(second.train_error, history.train_error)
