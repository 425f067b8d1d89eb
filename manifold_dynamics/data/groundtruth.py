"""Label errors that people found, as ground truth for the data-quality studies (SPEC §9).

The published test-set label errors (Northcutt, Athalye & Mueller, NeurIPS Datasets and
Benchmarks 2021; files mturk/*.json of the public repository cleanlab/label-errors): a JSON
list of the candidates that five crowd workers reviewed, each with its `id` (an index into the
test split, in the original order), `given_original_label`, `our_guessed_label` and the
worker counts `mturk` {given, guessed, neither}. An example is a label error when fewer than 3
of 5 workers chose its given label. CIFAR-10N's noisy labels are read as --labels
(`task.read_labels`). These files are read where they are (a --groundtruth path); none is
copied into the project.
"""

import json
from typing import NamedTuple

import numpy as np

from manifold_dynamics.errors import UserError

AGREEING = 3  # an error: fewer than this many of the 5 workers chose the given label


class PublishedErrors(NamedTuple):
  """The reviewed candidates of one test split and which of them are errors."""

  candidates: np.ndarray  # (C,) int, indices into the test split
  errors: np.ndarray  # (E,) int, sorted: the candidates with fewer than 3 votes for the label
  guessed: np.ndarray  # (E,) int, the label the reviewers proposed for each error


def published_errors(path: str, indices: np.ndarray, classes: np.ndarray) -> PublishedErrors:
  """The published errors of a test split of which T holds the examples `indices` (into the
  split) with original labels `classes`; a one-line error for a file that is not such a list,
  or whose given labels disagree with T's (another data set, or another order)."""
  try:
    with open(path) as f:
      entries = json.load(f)
    ids = np.array([int(e['id']) for e in entries], np.int64)
    given = np.array([int(e['given_original_label']) for e in entries], np.int64)
    guessed = np.array([int(e['our_guessed_label']) for e in entries], np.int64)
    votes = np.array([int(e['mturk']['given']) for e in entries], np.int64)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(
        f'--groundtruth={path}: not a list of reviewed label errors ({type(e).__name__}: {e}).'
    ) from None
  if not len(ids):
    raise UserError(f'--groundtruth={path}: the list is empty.')
  label_of = dict(zip(np.asarray(indices).tolist(), np.asarray(classes).tolist()))
  inside = np.array([i in label_of for i in ids.tolist()])
  differ = sum(label_of[i] != g for i, g in zip(ids[inside].tolist(), given[inside].tolist()))
  if differ or not inside.any():
    raise UserError(
        f'--groundtruth={path}: {differ} of the {int(inside.sum())} reviewed examples in T have '
        "another given label than T's; the file belongs to another data set or order (train "
        'on the test split: --train_split=test).'
        if inside.any()
        else f'--groundtruth={path}: none of its examples is in T; train on the test split '
        '(--train_split=test) from its first example.'
    )
  wrong = (votes < AGREEING) & inside
  order = np.argsort(ids[wrong])
  return PublishedErrors(np.sort(ids[inside]), ids[wrong][order], guessed[wrong][order])
