"""LVIS evaluation inside Model Garden's validation loop.

`LVISEvaluator` is Model Garden's COCOEvaluator with the evaluation swapped:
the task feeds it exactly as it feeds the COCO one (`update_state` collects
and rescales the predictions, `result` evaluates and resets), and `evaluate`
runs the LVIS API through `lvis_metrics` on the annotation file's federated
ground truth. Class indices are the contiguous indices of `category_map`.
"""
from typing import Dict

import numpy as np
from official.vision.evaluation import coco_evaluator
from official.vision.evaluation import coco_utils

from backbone_reuse.data import category_map
from backbone_reuse.evaluation import lvis_metrics


class LVISEvaluator(coco_evaluator.COCOEvaluator):
  """Box (and mask) LVIS metrics: AP, AP50, AP75, APs/m/l, APr/c/f."""

  def __init__(self, annotation_file: str, include_mask: bool,
               per_category_metrics: bool = False,
               max_detections: int = lvis_metrics.MAX_DETECTIONS):
    """Loads the LVIS-format ground truth.

    Args:
      annotation_file: LVIS-format JSON of the evaluated split (needed: the
        federated fields are not in the TFRecords Model Garden decodes).
      include_mask: also evaluate masks ('mask_' metrics).
      per_category_metrics: also report 'AP ByCategory/NAME'.
      max_detections: per image.
    """
    if not annotation_file:
      raise ValueError('LVIS evaluation needs task.annotation_file (the '
                       'LVIS-format JSON of the validation split); got '
                       f'{annotation_file!r}.')
    # No file for the parent: it would load the ground truth with COCO's API.
    super().__init__(annotation_file=None, include_mask=include_mask,
                     max_num_eval_detections=max_detections)
    self._annotation_file = annotation_file  # update_state: no GT needed.
    self._ground_truth = lvis_metrics.load_ground_truth(annotation_file)
    self._category_map = category_map.CategoryMap(
        self._ground_truth.get_cat_ids())
    self._lvis_per_category = per_category_metrics
    self._max_detections = max_detections
    self.reset_states()

  @property
  def name(self):
    return 'lvis_metric'

  def detections(self):
    """The collected predictions as LVIS result dicts (category ids)."""
    results = []
    if not self._predictions:
      return results
    # Copied lists: the conversion replaces their boxes with xywh ones.
    predictions = {k: list(v) for k, v in self._predictions.items()}
    for result in coco_utils.convert_predictions_to_coco_annotations(
        predictions):
      score = float(result['score'])
      class_index = int(result['category_id'])
      if score <= 0 or class_index == 0:  # Padding / background.
        continue
      detection = {
          'image_id': int(result['image_id']),
          'category_id': self._category_map.category_id(class_index),
          'bbox': [float(v) for v in result['bbox']],
          'score': score,
      }
      if 'segmentation' in result:
        rle = result['segmentation']
        detection['segmentation'] = {'size': list(rle['size']),
                                     'counts': rle['counts'].decode()}
      results.append(detection)
    return results

  def evaluate(self) -> Dict[str, np.float32]:
    detections = self.detections()
    metrics = {}
    for prefix, iou_type in (('', 'bbox'), ('mask_', 'segm')):
      if iou_type == 'segm' and not self._include_mask:
        continue
      values = lvis_metrics.evaluate(self._ground_truth, detections, iou_type,
                                     self._max_detections)
      for name in lvis_metrics.SUMMARY:
        metrics[prefix + name] = np.float32(values[name])
      if self._lvis_per_category:
        for name, value in values['per_class'].items():
          metrics[f'{prefix}AP ByCategory/{name}'] = np.float32(value)
    return metrics
