"""COCO evaluation of a detector whose class indices are mapped category ids.

A task with `class_category_ids` trains on class indices 1..K; its
annotation file (and the reported per-category metrics) speak the dataset's
category ids. `CategoryIdEvaluator` wraps Model Garden's COCOEvaluator and
turns class indices back into category ids before it scores them.
"""
from typing import Dict, Sequence

import tensorflow as tf


def to_category_ids(classes, class_category_ids: Sequence[int]) -> tf.Tensor:
  """Class indices 1..K as their category ids (same dtype); any other value
  (background, padding) unchanged."""
  classes = tf.convert_to_tensor(classes)
  count = len(class_category_ids)
  ids = tf.constant([0] + sorted(int(i) for i in class_category_ids),
                    classes.dtype)
  inside = tf.logical_and(classes >= 1, classes <= count)
  index = tf.cast(tf.clip_by_value(classes, 0, count), tf.int32)
  return tf.where(inside, tf.gather(ids, index), classes)


class CategoryIdEvaluator:
  """`evaluator` (Model Garden's COCOEvaluator) fed category ids."""

  def __init__(self, evaluator, class_category_ids: Sequence[int]):
    self._evaluator = evaluator
    self._ids = list(class_category_ids)

  def __getattr__(self, name):
    return getattr(self._evaluator, name)

  def _mapped(self, values, key: str) -> Dict:
    values = dict(values)
    values[key] = tf.nest.map_structure(
        lambda x: to_category_ids(x, self._ids), values[key])
    return values

  def update_state(self, groundtruths: Dict, predictions: Dict) -> None:
    predictions = self._mapped(predictions, 'detection_classes')
    if groundtruths and 'classes' in groundtruths:
      # Scored only without an annotation file; labels were mapped on decode.
      groundtruths = self._mapped(groundtruths, 'classes')
    self._evaluator.update_state(groundtruths, predictions)
