"""The per-example score columns of a run's scores.npz: their groups and names, and which end of
each column is "hard" (top-k = the k hardest examples). The engine records them
(`engine/difficulty.py`); the analysis reads them (`analysis/scores.py`).
"""

from typing import Sequence

GROUPS = ('forgetting', 'el2n', 'grand', 'cartography', 'aum', 'input_norm')
CAPTURED = ('el2n', 'grand')  # taken at chosen epochs rather than accumulated over all

# Column name -> +1 if a larger value means a harder example, -1 if a smaller one does.
HARDER = {
    'forgetting_events': 1,
    'learned_epoch': 1,  # late (T: never learned for good) = hard
    'ever_learned': -1,
    'el2n': 1,
    'grand': 1,
    'confidence': -1,
    'variability': 1,  # cartography's "ambiguous" end
    'correctness': -1,
    'aum': -1,
    'input_norm': 1,
    'straggler': 1,
}


def groups_of(scores: Sequence[str]):
  """The groups in `scores` accumulated inside the scan, in GROUPS order."""
  return tuple(g for g in GROUPS if g in scores and g != 'input_norm')


# Column -> the group (of GROUPS) that records it, where the two differ.
_GROUP_OF = {
    'forgetting_events': 'forgetting',
    'learned_epoch': 'forgetting',
    'ever_learned': 'forgetting',
    'confidence': 'cartography',
    'variability': 'cartography',
    'correctness': 'cartography',
}


def group_of(column: str) -> str:
  """The group of GROUPS whose recording gives `column` ('straggler' for that column)."""
  kind = column_kind(column)
  return _GROUP_OF.get(kind, kind)


def column_kind(column: str) -> str:
  """'el2n' for 'el2n_t10' or 'el2n_tstar', else the column itself (a key of HARDER)."""
  return column.split('_t')[0] if column.startswith(CAPTURED) else column
