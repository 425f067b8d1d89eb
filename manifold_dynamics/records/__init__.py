"""The records of a run, readable without JAX or Flax: the History of every epoch
(history.py), the run directory (io.py), the streamed store (store.py), checkpoints
(checkpoint.py) and the score columns (scores.py)."""
