"""The one exception type a user is meant to read.

Every bad input (unknown dataset, a training slice larger than the split, a corrupt file, a
diverging learning rate, an existing run directory) raises `UserError` with a one-line message
that says what to do. Entry points print it as a single line and exit non-zero; library callers
(notebooks, tests) can catch it.

`as_user_error` also reads XLA running out of memory (a device's or the host's) as one.
"""

from typing import Optional


class UserError(ValueError):
  """A problem with the user's input or environment, with a one-line remedy."""


def as_user_error(error: BaseException) -> Optional[UserError]:
  """`error` itself if a UserError; a UserError saying what to do if it is XLA's
  RESOURCE_EXHAUSTED (out of memory); None for any other error."""
  if isinstance(error, UserError):
    return error
  text = str(error)
  if type(error).__name__ not in ('JaxRuntimeError', 'XlaRuntimeError') or (
      'RESOURCE_EXHAUSTED' not in text
  ):
    return None
  detail = text.split('RESOURCE_EXHAUSTED:', 1)[1].strip().splitlines()[0]
  return UserError(
      f'out of memory ({detail}); train fewer seeds at once (--seed_batch=2, say) or lower '
      f"--eval_batch_size; what was trained is checkpointed in the run's .partial directory "
      f'(a run that trained nothing restarts with the new settings).'
  )
