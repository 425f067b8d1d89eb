"""The analysis of finished runs: NumPy and SciPy only, never JAX.

  inversion     t* of each curve (global, first confirmed, after a transient), phi, S(t*)
  stragglers    straggler sets, their overlaps and z-scores against the hypergeometric null
  finite_size   the finite-size fit phi(P) = phi_inf (1 - (P/P0)^-gamma), with bootstrap
  scores        statistics of the per-example scores (rank correlations, top-k overlaps)
  predictors    predictors of phi that train no network (linear, k-NN)
  removals      which examples to remove before retraining (Fig. 2a-c, pruning by score)
  grid          the settings grid as data: its cells, each cell's row, its tables

May import: errors, data/, records/, config (the layers below it); never engine/.
"""
