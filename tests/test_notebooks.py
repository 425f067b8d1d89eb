"""Every notebook runs end to end with tiny parameters.

The code cells are executed in order in one namespace, as a kernel would, after the cell tagged
`parameters` (papermill's convention) is followed by the test's overrides; IPython magics and
shell lines (`%pip`, `!git`) are set-up for interactive use and are skipped.
"""

import glob
import json
import os

import matplotlib
import pytest

matplotlib.use('Agg')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, 'notebooks', '*.ipynb')))


def code_cells(path):
  with open(path) as f:
    nb = json.load(f)
  for cell in nb['cells']:
    if cell['cell_type'] == 'code':
      source = ''.join(cell['source'])
      lines = [line for line in source.splitlines()
               if not line.lstrip().startswith(('%', '!'))]
      yield '\n'.join(lines), 'parameters' in cell['metadata'].get('tags', [])


def test_there_are_notebooks():
  assert NOTEBOOKS


# optimizers.ipynb trains seven settings: the slowest, run by make test-all.
@pytest.mark.parametrize(
    'path',
    [
        pytest.param(p, marks=pytest.mark.slow) if p.endswith('optimizers.ipynb') else p
        for p in NOTEBOOKS
    ],
    ids=os.path.basename,
)
def test_notebook_runs_with_tiny_parameters(path, mnist_dir, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  overrides = (f'TRAIN_SIZE = 64\nSEEDS = 2\nEPOCHS = 30\nDATA_DIR = {mnist_dir!r}\n'
               f'WORKDIR = {str(tmp_path / "run")!r}\nLR = 0.5\nTRAIN_SIZES = [32, 48, 64]\n')
  namespace = {'__name__': '__main__'}
  saw_parameters = False
  for source, is_parameters in code_cells(path):
    exec(compile(source, path, 'exec'), namespace)  # pylint: disable=exec-used
    if is_parameters:
      exec(overrides, namespace)  # pylint: disable=exec-used
      saw_parameters = True
  assert saw_parameters
  assert os.path.exists(tmp_path / 'run' / 'summary.json')
  assert 'phi =' in capsys.readouterr().out
