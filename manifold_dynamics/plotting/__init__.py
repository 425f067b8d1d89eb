"""Publication figures, drawn only from what a run directory holds (History, Inversion,
summaries); NumPy, SciPy and matplotlib, never JAX.

  style        the shared look (colours and labels of each curve, matplotlib settings, applied
               when this package is imported), the caption under a figure, and `save`;
  curves       the shared axes and curves: mean and band over seeds, epoch and training-error
               axes, observables against training error;
  <study>      one module per study of `studies/`, named as it is (inversion, stragglers,
               pruning, robustness, scaling, discussion, scores, predictors), holding that
               study's figures.

Every figure function returns the matplotlib Figure; `style.save` writes it as PNG and PDF.
May import: analysis/, records/ (the layers below it).
"""

from manifold_dynamics.plotting import style  # noqa: F401  (the shared look, on import)
