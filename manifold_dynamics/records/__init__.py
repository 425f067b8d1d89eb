"""The records of a run, readable without JAX or Flax.

  history       the History of every epoch, the observables and the t* criteria' constants
  io            the run directory (config.json, history/, summary.json, figures), atomic
  store         the history streamed chunk by chunk, with the training state's checkpoint
  checkpoint    the training state as a file (imports JAX only inside its two functions)
  scores        the names of the per-example score columns and which end is "hard"
  examples      examples.csv: one row per training example with its scores

May import: errors, data/ (the layers below it).
"""
