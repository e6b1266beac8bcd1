"""Class-balanced weights for the box classifier's cross-entropy.

Stage 2 of the LVIS recipe (paper §4.3, after Ghiasi et al. 2021) retrains
the box classifier with a class-balanced loss. We weight Model Garden's
softmax cross-entropy per target class (its `losses.class_weights`), with
  effective_number   w_c ∝ (1 - beta) / (1 - beta^n_c)   (Cui et al. 2019,
                     "Class-Balanced Loss Based on Effective Number of
                     Samples"; beta = 0.999 by default)
  inverse_frequency  w_c ∝ 1 / n_c
where n_c is class c's number of training annotations (at least 1, so a
class absent from training gets the largest weight rather than infinity).
Foreground weights are normalised to average 1 (Cui et al.'s normalisation
to sum to the number of classes); background RoIs keep weight 1.
"""
from typing import List, Sequence

import numpy as np

from backbone_reuse.data import category_map

NONE = 'none'
EFFECTIVE_NUMBER = 'effective_number'
INVERSE_FREQUENCY = 'inverse_frequency'
TYPES = (NONE, EFFECTIVE_NUMBER, INVERSE_FREQUENCY)


def class_weights(counts: Sequence[int], kind: str,
                  beta: float = 0.999) -> List[float]:
  """Weights for class indices 0 (background), 1..K.

  Args:
    counts: training annotations of class indices 1..K.
    kind: 'effective_number' or 'inverse_frequency'.
    beta: the effective-number hyper-parameter, in [0, 1).

  Returns:
    K + 1 weights; index 0 is 1.0, the others average 1.0.
  """
  n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
  if kind == EFFECTIVE_NUMBER:
    if not 0.0 <= beta < 1.0:
      raise ValueError(f'beta={beta}; accepted: 0 <= beta < 1.')
    weights = (1.0 - beta) / (1.0 - np.power(beta, n))
  elif kind == INVERSE_FREQUENCY:
    weights = 1.0 / n
  else:
    raise ValueError(f'class-balanced loss type={kind!r}; accepted: '
                     f'{EFFECTIVE_NUMBER}, {INVERSE_FREQUENCY}.')
  weights = weights * len(weights) / weights.sum()
  return [1.0] + weights.tolist()


def annotation_counts(annotation_file: str) -> List[int]:
  """Training annotations per class index 1..K, from a COCO/LVIS JSON."""
  per_class, _ = category_map.class_training_counts(annotation_file)
  return [counts['annotations'] for counts in per_class]
