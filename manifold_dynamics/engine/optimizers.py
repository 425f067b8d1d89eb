"""Full-batch optimisers by name (SPEC §3), matching PyTorch's conventions.

Each builder takes the `TrainConfig` and returns an optax transformation. Weight decay is the
coupled L2 term PyTorch's SGD adds to the gradient (g + lambda * theta), momentum is PyTorch's
heavy ball (v <- mu v + g, theta <- theta - lr v), Adam has PyTorch's default betas and eps.
"""

from typing import Callable, Dict

import optax

OPTIMIZERS: Dict[str, Callable[..., optax.GradientTransformation]] = {
    'sgd': lambda cfg: optax.sgd(cfg.lr),
    'momentum': lambda cfg: optax.sgd(cfg.lr, momentum=cfg.momentum),
    'sgd_wd': lambda cfg: optax.chain(
        optax.add_decayed_weights(cfg.weight_decay), optax.sgd(cfg.lr)
    ),
    'adam': lambda cfg: optax.adam(cfg.lr, b1=0.9, b2=0.999, eps=1e-8),
}


def make_optimizer(cfg) -> optax.GradientTransformation:
  """The optax transformation named by `cfg.optimizer`."""
  return OPTIMIZERS[cfg.optimizer](cfg)
