"""The engine: device-side JAX. Models (models.py, the contract any Flax model meets in
contract.py), the training step and the seed-parallel loop (train.py), the geometry of class
manifolds (geometry.py), optimisers, the stop rule, difficulty scores recorded in the scan,
signals and several hosts."""
