"""manifold_dynamics: inversion dynamics of class manifolds during training, in JAX.

Reproduces and extends Ciceri et al., "Inversion dynamics of class manifolds in deep learning
reveals tradeoffs underlying generalisation" (arXiv 2023; Nature Machine Intelligence 2024).

The package is in layers, each importing only from the ones above it in this list, at module
level or inside a function (tests/test_layers.py); each folder's __init__ says what it holds:

  errors                 the one-line error every bad input raises
  data/                  datasets, their verified cache, the task (NumPy)
  records/               a run's history, run directory, store, checkpoint (NumPy, no JAX)
  config                 the frozen run configurations, and their flags' help (no JAX)
  engine/                models by name, the one trainer, geometry, optimisers, stop rule,
                         difficulty scores, signals, several hosts (JAX, Flax, optax)
  analysis/              the numbers of finished runs (NumPy, SciPy; beside engine/, never
                         importing it)
  plotting/              figures of records and analyses (matplotlib), one module per study
  studies/               one module per experiment family, on two skeletons (Study, Sweep)
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
    'MLP': 'manifold_dynamics.engine.models.mlp',
    'CNN': 'manifold_dynamics.engine.models.cnn',
    'ResNet': 'manifold_dynamics.engine.models.resnet',
    'ViT': 'manifold_dynamics.engine.models.vit',
    'Conv': 'manifold_dynamics.engine.models.layers',
    'Dense': 'manifold_dynamics.engine.models.layers',
    'TrainData': 'manifold_dynamics.engine.state',
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
