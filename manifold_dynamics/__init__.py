"""manifold_dynamics: inversion dynamics of class manifolds during training, in JAX.

Reproduces and extends Ciceri et al., "Inversion dynamics of class manifolds in deep learning
reveals tradeoffs underlying generalisation" (arXiv 2023; Nature Machine Intelligence 2024).
"""

__version__ = '0.1.0'

from manifold_dynamics.config import DataConfig, TrainConfig
from manifold_dynamics.errors import UserError
from manifold_dynamics.geometry import ClassGeometry, class_geometry, project_to_sphere
from manifold_dynamics.models import MLP
from manifold_dynamics.train import History, TrainData, fit, make_train, seed_keys
