"""The engine: everything that runs on the device (JAX, Flax, optax).

  models/       the models by name, one module each with its settings (models/__init__.py
                says how to add one), and the layers they are built from (models/layers.py)
  contract      what the trainer needs of a model: `Network`, and any Flax module under the
                contract (`ModuleNetwork`)
  state         the types the trainer and the models share: the task on the device, the
                standardiser, the scan carry and the records of an epoch
  train         the one trainer: `make_train` (pure functions of one seed) and `fit` (the
                seed-parallel chunk loop)
  geometry      the jitted kernels of R+, R-, D (and R_k, D_kl) of each epoch
  difficulty    the per-example scores accumulated inside the scan, one registry entry each
  evaluate      trained nets evaluated again: noisy test sets, scores replayed to an epoch
  optimizers, stopping, preemption, distributed
                optimisers by name, stop rules, SIGTERM between chunks, several hosts

May import: errors, data/, records/, config (the layers below it); never analysis/.
"""
