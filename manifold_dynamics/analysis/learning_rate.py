"""A full-batch learning rate the model can follow (SPEC §8), read from finished runs.

Full-batch GD at the MLP's lr 0.2 makes a conv net's loss oscillate, and its curves then
wiggle on the scale of the tolerance. The rule: of the candidates (0.2, 0.1, 0.05, 0.02), the
largest at which the training loss falls in every seed and at every epoch up to t*, within
float noise, on every dataset measured.

t* here is per seed the latest after-transient t* (SPEC §8) of any headline curve at any
measured layer that inverts (the rule must hold through the whole segregation phase, wherever
it happens), or the last epoch where nothing inverts. Float noise: a rise of the loss of at
most NOISE times its value (float32 rounding of a mean over P examples is ~1e-7 relative).
"""

from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from manifold_dynamics.records import readings

CANDIDATES = (0.2, 0.1, 0.05, 0.02)
NOISE = 1e-5
RULE = (
    f'the largest of {", ".join(f"{lr:g}" for lr in CANDIDATES)} at which the training loss '
    f'falls in every seed and every epoch up to t* (the latest after-transient t* of any '
    f'curve at any measured layer that inverts; else the last epoch), within a relative '
    f'{NOISE:g} of float noise, on every dataset measured (a smaller lr taken to pass where a '
    f'larger one does)'
)


def horizon(history) -> np.ndarray:
  """(seeds,) the epoch up to which the loss must fall (module docstring)."""
  names = history.observables
  curves = []
  for name in names:
    layered = getattr(history, f'layer_{name}')
    if layered is None:
      curves.append(getattr(history, name)[..., None])
    else:
      curves.append(layered)
  latest = np.full(history.num_seeds, -1)
  for name, layered in zip(names, curves):
    for k in range(layered.shape[-1]):
      reading = readings.after_transient(layered[..., k], history.train_error, name)
      latest = np.maximum(latest, np.where(reading.confirmed >= 0, reading.t_star, -1))
  return np.where(latest >= 0, latest, history.num_epochs)


def first_rise(loss_SxT: np.ndarray, horizon_S: np.ndarray, noise: float = NOISE) -> np.ndarray:
  """(seeds,) the first epoch t < horizon at which loss(t + 1) > loss(t) (1 + noise), or -1."""
  loss = np.asarray(loss_SxT, np.float64)
  rises = loss[:, 1:] > loss[:, :-1] * (1 + noise)
  rises &= np.arange(rises.shape[1])[None] < np.asarray(horizon_S)[:, None]
  return np.where(rises.any(axis=1), np.argmax(rises, axis=1), -1)


def readable_until(history) -> np.ndarray:
  """(seeds,) the epoch up to which a full-batch run's loss fell (the rule above): the first
  t with loss(t + 1) > loss(t) beyond float noise, else the number of epochs. Past it the
  curves may wiggle with the loss, and a "t*" there may read the oscillation."""
  rise = first_rise(history.loss, np.full(history.num_seeds, history.num_epochs))
  return np.where(rise >= 0, rise, history.num_epochs)


def check(history) -> dict:
  """Whether one run's loss falls up to its t* in every seed, and where it first rose."""
  until = horizon(history)
  rise = first_rise(history.loss, until)
  loss = np.asarray(history.loss, np.float64)
  step = np.diff(loss, axis=1) / loss[:, :-1]
  within = np.arange(step.shape[1])[None] < until[:, None]
  return {
      'passes': bool(np.all(rise < 0)),
      'seeds_failing': int(np.sum(rise >= 0)),
      'horizon': until.tolist(),
      'first_rise': rise.tolist(),
      'largest_relative_rise': float(np.max(np.where(within, step, -np.inf))),
  }


def choose(checks: Mapping[Tuple[str, str, float], dict]) -> Dict[str, dict]:
  """{model: {'lr', 'by_dataset', 'passes'}} from `check` rows keyed by (model, dataset, lr):
  per dataset the largest lr that passes (None if none does), and the model's lr, the
  smallest of those (the largest that passes on every dataset, taking a smaller lr to pass
  where a larger one did: the study trains it only where the larger one failed)."""
  out = {}
  for model in dict.fromkeys(m for m, _, _ in checks):
    datasets = list(dict.fromkeys(d for m, d, _ in checks if m == model))
    passing = {
        d: sorted(
            (lr for m, dd, lr in checks if m == model and dd == d and checks[m, dd, lr]['passes']),
            reverse=True,
        )
        for d in datasets
    }
    best = {d: (v[0] if v else None) for d, v in passing.items()}
    lr = None if None in best.values() else min(best.values())
    out[model] = {'lr': lr, 'by_dataset': best, 'passes': passing}
  return out


def candidates(lrs: Sequence[float]) -> Tuple[float, ...]:
  """The candidates, largest first."""
  return tuple(sorted(set(float(lr) for lr in lrs), reverse=True))
