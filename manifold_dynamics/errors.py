"""The one exception type a user is meant to read.

Every bad input (unknown dataset, a training slice larger than the split, a corrupt file, a
diverging learning rate, an existing run directory) raises `UserError` with a one-line message
that says what to do. Entry points print it as a single line and exit non-zero; library callers
(notebooks, tests) can catch it.
"""


class UserError(ValueError):
  """A problem with the user's input or environment, with a one-line remedy."""
