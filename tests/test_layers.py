"""The package's layers (manifold_dynamics/__init__.py): each imports only from those below it,
and the records and the analysis of a finished run never import JAX."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'manifold_dynamics'

# Rank of each group; a module may import its own group and any group of a lower rank. The
# engine and the analysis share a rank: neither imports the other.
RANK = {
    'errors': 0,
    'data': 1,
    'records': 2,
    'config': 3,
    'engine': 4,
    'analysis': 4,
    'plotting': 5,
    'studies': 6,
    'cli': 7,
}
WITHOUT_JAX = ('errors', 'data', 'records', 'config', 'analysis', 'plotting')
HEAVY = ('jax', 'jaxlib', 'flax', 'optax', 'tensorflow', 'tensorflow_datasets')


def group_of(module: str) -> str:
  """'engine' for manifold_dynamics.engine.train, 'config' for manifold_dynamics.config."""
  return module.split('.')[1]


def modules():
  for path in sorted(PACKAGE.rglob('*.py')):
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    if parts[-1] in ('__init__', '__main__') and len(parts) == 2:
      continue  # the package's lazy __init__, imported by everything
    yield '.'.join(p for p in parts if p != '__init__'), path


def imports_of(path: pathlib.Path):
  """manifold_dynamics modules that `path` imports, anywhere: at module level and inside
  functions (an import inside a function climbs as much as one at the top)."""
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      if node.module == 'manifold_dynamics':
        found += [f'manifold_dynamics.{a.name}' for a in node.names]
      elif node.module.startswith('manifold_dynamics.'):
        found.append(node.module)
    elif isinstance(node, ast.Import):
      found += [a.name for a in node.names if a.name.startswith('manifold_dynamics.')]
  return found


@pytest.mark.parametrize('module,path', list(modules()), ids=lambda v: str(v))
def test_imports_only_from_lower_layers(module, path):
  own = group_of(module)
  for target in imports_of(path):
    other = group_of(target)
    assert (
        other == own or RANK[other] < RANK[own]
    ), f'{module} ({own}) imports {target} ({other}): a layer imports only from those below it'


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
  path = tmp_path / 'm.py'
  path.write_text(
      'import os\n'
      'def f():\n'
      '  from manifold_dynamics.engine import train\n'
      '  import manifold_dynamics.studies.sweeps\n'
      'class C:\n'
      '  def g(self):\n'
      '    from manifold_dynamics import plotting\n'
  )
  assert imports_of(path) == [
      'manifold_dynamics.engine',
      'manifold_dynamics.studies.sweeps',
      'manifold_dynamics.plotting',
  ]


def test_every_group_has_a_rank():
  assert {group_of(m) for m, _ in modules()} == set(RANK)


def loaded_after(*imports: str) -> list:
  code = (
      ''.join(f'import {m}\n' for m in imports)
      + 'import sys\n'
      + f'print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))'
  )
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  return ast.literal_eval(out.stdout.strip())


def test_records_analysis_and_plotting_never_import_jax():
  light = [m for m, _ in modules() if group_of(m) in WITHOUT_JAX]
  assert loaded_after('manifold_dynamics', *light) == []


def test_reading_a_finished_run_needs_no_jax(tmp_path):
  # a history written with NumPy alone, read back and analysed in a process without JAX
  code = f"""
import sys
import numpy as np
from manifold_dynamics.analysis import inversion
from manifold_dynamics.records import io
from manifold_dynamics.records.history import History
t = np.arange(50.0)
curve = np.stack([1 - 0.5 * np.exp(-((t - 10) / 5) ** 2)] * 2)
h = History(curve, curve, 1 - curve, np.ones((2, 50)), np.linspace(0.5, 0, 50)[None].repeat(2, 0),
            np.zeros((2, 50)), np.zeros((2, 50, 1), np.uint8), num_examples=8)
io.save_history({str(tmp_path / 'h.npz')!r}, h, np.arange(8))
inv = inversion.analyse(io.load_history({str(tmp_path / 'h.npz')!r}))
assert list(inv.curves['R_plus'].t_star) == [10, 10], inv.curves['R_plus'].t_star
print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))
"""
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert ast.literal_eval(out.stdout.strip()) == []


def test_the_package_exports_load_on_first_use():
  import manifold_dynamics

  assert manifold_dynamics.TrainConfig().lr == 0.2
  assert 'fit' in dir(manifold_dynamics)
  with pytest.raises(AttributeError):
    manifold_dynamics.no_such_name  # noqa: B018
