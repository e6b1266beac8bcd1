"""LVIS box / mask metrics computed by the official LVIS API (`lvis` package).

LVIS is federated: a detection counts only on images where its category is
known present or known absent (`neg_category_ids`); unmatched detections of a
category in `not_exhaustive_category_ids` are ignored; up to 300 detections
per image; AP is also reported per frequency group (APr / APc / APf). The
LVIS API implements exactly this, so we run it rather than re-implement it.

The PyPI release (lvis 0.5.3) cannot run on numpy >= 1.24:
`LVISEval.accumulate` casts with `np.float`, the alias of Python's `float`
that numpy removed. `numpy_float_alias()` gives the API's eval module a numpy
whose `float` is Python's `float` again -- only inside `lvis.eval`, only while
we evaluate and only if numpy lacks the alias -- so the arithmetic is the
API's own, unchanged (tests/test_lvis_metrics.py shows the failure without it
and the equality with it).
"""
import contextlib
import copy
import logging
import types
from typing import Dict, List, Union

from lvis import eval as lvis_eval
from lvis import lvis as lvis_dataset
from lvis import results as lvis_results
import numpy as np

MAX_DETECTIONS = 300  # Per image, the LVIS rule.
SUMMARY = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf')
AREAS = ('all', 'small', 'medium', 'large')


class _NumpyWithFloatAlias(types.ModuleType):
  """numpy, plus the `float` alias numpy >= 1.24 removed."""
  float = float

  def __init__(self):
    super().__init__('numpy')

  def __getattr__(self, name):
    return getattr(np, name)


@contextlib.contextmanager
def numpy_float_alias():
  """Lets lvis.eval use `np.float` on a numpy that no longer has it."""
  if 'float' in vars(np):
    yield
    return
  original = lvis_eval.np
  lvis_eval.np = _NumpyWithFloatAlias()
  try:
    yield
  finally:
    lvis_eval.np = original


class InMemoryLVIS(lvis_dataset.LVIS):
  """The API's ground-truth class over an already-loaded LVIS dict."""

  # pylint: disable=super-init-not-called
  def __init__(self, dataset: Dict):
    self.logger = logging.getLogger(lvis_dataset.__name__)
    self.dataset = dataset
    self._create_index()


class _NoResults(lvis_results.LVISResults):
  """An empty result set; the API's own constructor indexes results[0]."""

  # pylint: disable=super-init-not-called
  def __init__(self, ground_truth: lvis_dataset.LVIS):
    self.logger = logging.getLogger(lvis_results.__name__)
    self.dataset = dict(ground_truth.dataset, annotations=[])
    self._create_index()


def load_ground_truth(source: Union[str, Dict]) -> lvis_dataset.LVIS:
  """An LVIS API ground truth from a JSON path or a loaded dict."""
  if isinstance(source, dict):
    return InMemoryLVIS(source)
  return lvis_dataset.LVIS(source)


def run_lvis_eval(ground_truth: lvis_dataset.LVIS, detections: List[Dict],
                  iou_type: str,
                  max_detections: int = MAX_DETECTIONS) -> lvis_eval.LVISEval:
  """Runs the API's LVISEval (evaluate, accumulate, summarize).

  Args:
    ground_truth: LVIS-format ground truth.
    detections: LVIS/COCO result dicts: image_id, category_id, score, bbox
      ([x, y, w, h]) and, for 'segm', an RLE `segmentation`. Not modified.
    iou_type: 'bbox' or 'segm'.
    max_detections: per image, highest scores kept.

  Returns:
    The evaluated LVISEval (its `results`, `eval['precision']`, `params`).
  """
  if detections:
    # The API writes ids and areas into the dicts it is given.
    results = lvis_results.LVISResults(
        ground_truth, copy.deepcopy(detections), max_dets=max_detections)
  else:
    results = _NoResults(ground_truth)
  evaluator = lvis_eval.LVISEval(ground_truth, results, iou_type)
  evaluator.params.max_dets = max_detections
  with numpy_float_alias():
    evaluator.run()
  return evaluator


def evaluate(ground_truth: lvis_dataset.LVIS, detections: List[Dict],
             iou_type: str, max_detections: int = MAX_DETECTIONS) -> Dict:
  """LVIS metrics, per-class AP and per-class AP by object size.

  Args:
    ground_truth: LVIS-format ground truth.
    detections: result dicts (see `run_lvis_eval`).
    iou_type: 'bbox' or 'segm'.
    max_detections: per image.

  Returns:
    {'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc', 'APf',
     'AR@300', 'ARs@300', 'ARm@300', 'ARl@300' (the API's summary, in [0, 1],
     -1 where undefined), 'per_class': {name: AP},
     'per_class_by_area': {name: {'small': AP, 'medium': AP, 'large': AP}}}.
  """
  evaluator = run_lvis_eval(ground_truth, detections, iou_type,
                            max_detections)
  metrics = {name: float(value) for name, value in evaluator.results.items()}
  # precision: [IoU thresholds, recall points, categories, areas]; the
  # API averages the entries > -1, as here per category.
  precision = evaluator.eval['precision']
  per_class, per_class_by_area = {}, {}
  for index, category_id in enumerate(evaluator.params.cat_ids):
    name = ground_truth.cats[category_id]['name']
    by_area = {}
    for area_index, area in enumerate(AREAS):
      values = precision[:, :, index, area_index]
      values = values[values > -1]
      by_area[area] = float(np.mean(values)) if values.size else -1.0
    per_class[name] = by_area.pop('all')
    per_class_by_area[name] = by_area
  metrics['per_class'] = per_class
  metrics['per_class_by_area'] = per_class_by_area
  return metrics
