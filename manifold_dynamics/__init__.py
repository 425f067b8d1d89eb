"""manifold_dynamics: inversion dynamics of class manifolds during training, in JAX.

Reproduces and extends Ciceri et al., "Inversion dynamics of class manifolds in deep learning
reveals tradeoffs underlying generalisation" (arXiv 2023; Nature Machine Intelligence 2024).

The package is in layers, each importing only from the ones before it (tests/test_layers.py):

  errors, config, data   settings and tasks (NumPy)
  records/               a run's history, run directory, store, checkpoint (NumPy, no JAX)
  engine/                models, training step and loop, geometry, optimisers, stop rule,
                         difficulty scores, signals, several hosts (JAX, Flax, optax)
  analysis/              inversion, stragglers, finite-size fits, score statistics of a
                         finished run (NumPy, SciPy; no JAX)
  plotting               figures of records and analyses (matplotlib)
  studies/               one module per experiment family, on one skeleton (skeleton.py)
  cli                    the absl flags of the experiments/ entry points

The names below are imported on first use, so `import manifold_dynamics` loads nothing heavy
and reading a finished run never imports JAX.
"""

import importlib

__version__ = '0.1.0'

_EXPORTS = {
    'DataConfig': 'manifold_dynamics.config',
    'TrainConfig': 'manifold_dynamics.config',
    'UserError': 'manifold_dynamics.errors',
    'Task': 'manifold_dynamics.data',
    'History': 'manifold_dynamics.records.history',
    'load_run': 'manifold_dynamics.records.io',
    'ClassGeometry': 'manifold_dynamics.engine.geometry',
    'class_geometry': 'manifold_dynamics.engine.geometry',
    'project_to_sphere': 'manifold_dynamics.engine.geometry',
    'MLP': 'manifold_dynamics.engine.models',
    'CNN': 'manifold_dynamics.engine.models',
    'Conv': 'manifold_dynamics.engine.models',
    'ResNet': 'manifold_dynamics.engine.models',
    'TrainData': 'manifold_dynamics.engine.train',
    'fit': 'manifold_dynamics.engine.train',
    'make_train': 'manifold_dynamics.engine.train',
    'seed_keys': 'manifold_dynamics.engine.train',
    'run_inversion': 'manifold_dynamics.studies.inversion',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(list(globals()) + list(_EXPORTS))
