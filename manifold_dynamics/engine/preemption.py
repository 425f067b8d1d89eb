"""SIGTERM and SIGINT while training: finish the chunk in flight, then stop cleanly.

A preempted Colab or cluster job gets SIGTERM (Ctrl-C gives SIGINT) some seconds before it is
killed. Inside `Deferred`, the first such signal only sets `received`; `train.fit` looks at it
between chunks, after the chunk's records are streamed and its state checkpointed, and raises
`Interrupted`, whose one-line message says how to resume. A second signal acts at once as it
would have without us (Ctrl-C twice still kills a run), losing at most the chunk in flight.
"""

import signal
import threading
from typing import Optional

from manifold_dynamics.errors import UserError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(UserError):
  """Training stopped between chunks after SIGTERM or SIGINT; everything done is saved."""


class Deferred:
  """Context manager: defers SIGTERM/SIGINT to the next chunk boundary (main thread only;
  elsewhere signals cannot be caught and it does nothing)."""

  def __init__(self):
    self.received: Optional[str] = None
    self._previous = {}

  def _handle(self, signum, frame):
    if self.received is not None:  # second signal: the default behaviour, now
      self._restore()
      signal.raise_signal(signum)
      return
    self.received = signal.Signals(signum).name

  def _restore(self):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def __enter__(self) -> 'Deferred':
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    self._restore()
    return False
