"""Trained nets, evaluated again on the device: test errors under input noise (Fig. 2c) and
per-example scores at a chosen epoch of each seed, by replaying its training."""

import dataclasses
from typing import Callable, Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.engine import distributed, train
from manifold_dynamics.engine.state import RunState, TrainData, targets


def noisy_test_errors(
    logits_of: Callable,
    states: RunState,
    data: TrainData,
    sigmas: Sequence[float],
    key: jax.Array,
) -> np.ndarray:
  """(runs, len(sigmas)) test error of each trained net with Gaussian noise of std sigma
  added to the standardised test pixels (each run standardises with its own statistics).
  `logits_of(params, x (B, N) standardised)` gives the logits (B, K) of a net
  (`train.logits_function`). One noise draw per sigma is shared by all runs, so their
  comparisons are paired."""
  noise = jax.random.normal(key, (len(sigmas),) + data.x_test.shape)
  sigmas = jnp.asarray(sigmas, jnp.float32)
  labels = targets(data.y_test, data.num_classes)

  def one_run(state: RunState):
    shift, scale = state.standardiser
    x = (data.x_test - shift[None, :]) * scale[None, :]

    def one_sigma(args):
      sigma, eps = args
      logits = logits_of(state.train.params, x + sigma * eps)
      return jnp.mean((jnp.argmax(logits, axis=-1) != labels).astype(jnp.float32))

    return jax.lax.map(one_sigma, (sigmas, noise))

  return np.asarray(jax.jit(lambda s: jax.lax.map(one_run, s))(states))


def replay_at(
    cfg: TrainConfig,
    data: TrainData,
    epochs_S: np.ndarray,
    names: Sequence[str],
    keys=None,
    weights=None,
    model=None,
) -> Dict[str, np.ndarray]:
  """{name: (seeds, P[, K])} for `names` of 'el2n', 'grand' and 'probs' (softmax, (P, K)) at
  epoch epochs_S[s] of each seed s, replaying the training of `cfg` (same keys, same data,
  same network) from initialisation to there: the scan runs max(epochs_S) + 1 epochs, each
  seed keeping its own epoch's values."""
  cfg = dataclasses.replace(cfg, scores=(), score_epochs=(), test_every=0)
  state, data = train.start(cfg, data, keys, weights, model=model)
  target = jnp.asarray(train.pad_seeds(np.asarray(epochs_S), train.seed_padding(cfg.seeds)))
  trainer = train.make_train(cfg, data, model)
  names = tuple(names)
  num_epochs = int(np.max(epochs_S)) + 1

  def one_run(state, target):
    def epoch(carry, t):
      state, found = carry
      now = trainer.example_scores(state, data, names)
      found = {k: jnp.where(t == target, now[k], found[k]) for k in names}
      state, _ = trainer.run_epochs(state, data, 1, t)
      return (state, found), None

    shapes = jax.eval_shape(lambda s: trainer.example_scores(s, data, names), state)
    zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}
    (_, found), _ = jax.lax.scan(epoch, (state, zeros), jnp.arange(num_epochs))
    return found

  found = jax.jit(jax.vmap(one_run))(state, target)
  return {k: np.asarray(v)[: cfg.seeds] for k, v in distributed.gather(found).items()}


def probabilities(cfg: TrainConfig, data: TrainData, states: RunState, model=None) -> np.ndarray:
  """(seeds, P, K) softmax probabilities of every training example under the trained nets
  `states` (a leading seed axis, as `train.fit(..., return_state=True)` returns them)."""
  _, prepared = train.start(dataclasses.replace(cfg, scores=(), score_epochs=()), data, model=model)
  trainer = train.make_train(cfg, prepared, model)
  probs = jax.jit(jax.vmap(lambda s: trainer.example_scores(s, prepared, ('probs',))['probs']))
  return np.asarray(probs(states))
