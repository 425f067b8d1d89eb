"""The analysis of a finished run, in NumPy and SciPy: inversion epochs and phi
(inversion.py), the stragglers and their overlaps (stragglers.py), the finite-size fit of
phi(P) (finite_size.py) and the statistics of difficulty scores (scores.py)."""
