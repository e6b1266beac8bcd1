"""COCO box / mask metrics with per-class AP and LVIS-style group AP.

pycocotools computes everything; this adds what the paper reads off LVIS:
per-class AP and its mean over the rare / common / frequent classes (the
categories' `frequency` field, as in LVIS JSON).
"""
import contextlib
import io
from typing import Dict, List

import numpy as np
from pycocotools import coco
from pycocotools import cocoeval

from backbone_reuse.evaluation import frequency

_SUMMARY = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')
_AREAS = ('small', 'medium', 'large')
# APr / APc / APf over the categories of each frequency group.
GROUPS = {group: f'AP{group}' for group in frequency.GROUPS}


def evaluate(ground_truth: coco.COCO, detections: List[Dict],
             iou_type: str) -> Dict:
  """Evaluates COCO-format detections.

  Args:
    ground_truth: the loaded annotation file.
    detections: COCO result dicts (`bbox`, and `segmentation` for 'segm').
    iou_type: 'bbox' or 'segm'.

  Returns:
    {'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf',
     'per_class': {name: AP},
     'per_class_by_area': {name: {'small': AP, 'medium': AP, 'large': AP}}};
    APs are in [0, 1], -1 where undefined.
  """
  category_ids = sorted(ground_truth.getCatIds())
  if not detections:
    metrics = {name: 0.0 for name in _SUMMARY}
    per_class = {ground_truth.cats[c]['name']: 0.0 for c in category_ids}
    per_class_by_area = {name: dict.fromkeys(_AREAS, 0.0)
                         for name in per_class}
  else:
    # pycocotools 2.0.10's loadRes copies `info`, which COCO-format files
    # may leave out.
    ground_truth.dataset.setdefault('info', {})
    with contextlib.redirect_stdout(io.StringIO()):
      # loadRes writes into the dicts it is given (a box result gains a
      # polygon `segmentation`, `area`, `id`): give it copies.
      results = ground_truth.loadRes([dict(d) for d in detections])
      evaluator = cocoeval.COCOeval(ground_truth, results, iou_type)
      evaluator.evaluate()
      evaluator.accumulate()
      evaluator.summarize()
    metrics = {name: float(v) for name, v in zip(_SUMMARY, evaluator.stats)}
    # precision: [IoU thresholds, recall points, classes, areas (all,
    # small, medium, large), max dets].
    precision = evaluator.eval['precision'][..., -1]
    per_class, per_class_by_area = {}, {}
    for index, category_id in enumerate(evaluator.params.catIds):
      name = ground_truth.cats[category_id]['name']
      by_area = {}
      for area_index, area in enumerate(('all',) + _AREAS):
        values = precision[:, :, index, area_index]
        values = values[values > -1]
        by_area[area] = float(values.mean()) if values.size else -1.0
      per_class[name] = by_area.pop('all')
      per_class_by_area[name] = by_area
  for letter, name in GROUPS.items():
    values = [per_class[ground_truth.cats[c]['name']] for c in category_ids
              if ground_truth.cats[c].get('frequency') == letter]
    values = [v for v in values if v >= 0]
    metrics[name] = float(np.mean(values)) if values else -1.0
  metrics['per_class'] = per_class
  metrics['per_class_by_area'] = per_class_by_area
  return metrics
