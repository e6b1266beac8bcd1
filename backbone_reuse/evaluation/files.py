"""A detections file evaluated against COCO or LVIS ground truth files.

`evaluate_files` checks both files first -- each problem is one
`errors.BadInput` line naming the file, the entry and what is accepted --
then scores: COCO via pycocotools (plus per-class AP and rare/common/frequent
AP when categories carry LVIS `frequency`), LVIS via the official LVIS API
(evaluation/lvis_metrics.py), and under "stratified" each class's AP with
its training annotations (evaluation/stratified.py). Used by the evaluate
and predict command lines.
"""
import contextlib
import json
import math
import numbers
import os
import sys
import time

from backbone_reuse import errors
from backbone_reuse.evaluation import frequency

DATASETS = ('coco', 'lvis')
IOU_TYPES = ('bbox', 'segm')
BadInput = errors.BadInput


def load_json(path: str, what: str):
  if not path:
    raise BadInput(f'--{what} is required.')
  if not os.path.isfile(path):
    raise BadInput(f'--{what}={path!r}: no such file.')
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise BadInput(f'--{what}={path!r} is not JSON: {error}.') from None


def check_ground_truth(ground_truth, dataset: str, path: str) -> None:
  """Raises BadInput unless `ground_truth` is a COCO/LVIS annotation dict."""
  if not isinstance(ground_truth, dict):
    raise BadInput(f'--annotation_file={path!r}: expected a JSON object with '
                   f'images/annotations/categories, got '
                   f'{type(ground_truth).__name__}.')
  for key in ('images', 'annotations', 'categories'):
    if not isinstance(ground_truth.get(key), list):
      raise BadInput(f'--annotation_file={path!r}: "{key}" must be a list.')
  if dataset != 'lvis':
    return
  for image in ground_truth['images']:
    for key in ('neg_category_ids', 'not_exhaustive_category_ids'):
      if not isinstance(image.get(key), list):
        raise BadInput(
            f'--annotation_file={path!r}: image {image.get("id")!r} has no '
            f'"{key}" list; --dataset=lvis needs LVIS-format ground truth '
            f'(use --dataset=coco for COCO files).')
  for category in ground_truth['categories']:
    if category.get('frequency') not in frequency.GROUPS:
      raise BadInput(
          f'--annotation_file={path!r}: category {category.get("id")!r} has '
          f'frequency={category.get("frequency")!r}; accepted: '
          + ', '.join(f'"{g}"' for g in frequency.GROUPS) + '.')


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def check_detections(detections, ground_truth, iou_type: str,
                     path: str) -> None:
  """Raises BadInput naming the first detection that cannot be evaluated."""
  if not isinstance(detections, list):
    raise BadInput(f'--detections_file={path!r}: expected a JSON list of '
                   f'detections, got {type(detections).__name__}.')
  image_ids = {image['id'] for image in ground_truth['images']}
  category_ids = {category['id'] for category in ground_truth['categories']}
  for index, detection in enumerate(detections):
    where = f'--detections_file={path!r}: detection {index}'
    if not isinstance(detection, dict):
      raise BadInput(f'{where} is a {type(detection).__name__}, not an '
                     f'object.')
    for key, check, expected in (('image_id', _is_int, 'an integer'),
                                 ('category_id', _is_int, 'an integer'),
                                 ('score', _is_number, 'a finite number')):
      if not check(detection.get(key)):
        raise BadInput(f'{where} has {key}={detection.get(key)!r}; expected '
                       f'{expected}.')
    if detection['image_id'] not in image_ids:
      raise BadInput(f'{where} has image_id={detection["image_id"]}, which is '
                     f'not an image of the annotation file.')
    if detection['category_id'] not in category_ids:
      raise BadInput(f'{where} has category_id={detection["category_id"]}, '
                     f'which is not a category of the annotation file.')
    box = detection.get('bbox')
    if box is not None or iou_type == 'bbox':
      if not (isinstance(box, list) and len(box) == 4 and
              all(_is_number(v) for v in box) and box[2] >= 0 and
              box[3] >= 0):
        raise BadInput(f'{where} has bbox={box!r}; expected [x, y, width, '
                       f'height] with width, height >= 0.')
    if iou_type == 'segm':
      mask = detection.get('segmentation')
      if not (isinstance(mask, dict) and isinstance(mask.get('counts'), str)
              and isinstance(mask.get('size'), list)
              and len(mask['size']) == 2
              and all(_is_int(v) for v in mask['size'])):
        raise BadInput(f'{where} has segmentation={str(mask)[:80]}; '
                       f'--iou_type=segm needs an RLE {{"size": [h, w], '
                       f'"counts": str}}.')


def evaluate_files(annotation_file: str, detections_file: str, dataset: str,
                   iou_type: str = 'bbox', train_annotation_file: str = '',
                   plot_file: str = '') -> dict:
  """Checks the files and evaluates; raises errors.BadInput on bad input."""
  if dataset not in DATASETS:
    raise BadInput(f'--dataset={dataset!r}; accepted: {", ".join(DATASETS)}.')
  if iou_type not in IOU_TYPES:
    raise BadInput(
        f'--iou_type={iou_type!r}; accepted: {", ".join(IOU_TYPES)}.')
  ground_truth = load_json(annotation_file, 'annotation_file')
  check_ground_truth(ground_truth, dataset, annotation_file)
  detections = load_json(detections_file, 'detections_file')
  check_detections(detections, ground_truth, iou_type, detections_file)
  training_set = None
  if train_annotation_file:
    training_set = load_json(train_annotation_file, 'train_annotation_file')
    check_ground_truth(training_set, 'coco', train_annotation_file)
    missing = ({c['id'] for c in ground_truth['categories']} -
               {c['id'] for c in training_set['categories']})
    if missing:
      raise BadInput(f'--train_annotation_file={train_annotation_file!r} '
                     f'lacks categories {sorted(missing)[:10]} of '
                     '--annotation_file.')
  start = time.perf_counter()
  # Imported here: --help and bad input answer without loading them.
  if dataset == 'lvis':
    from backbone_reuse.evaluation import lvis_metrics  # pylint: disable=g-import-not-at-top
    metrics = lvis_metrics.evaluate(
        lvis_metrics.load_ground_truth(ground_truth), detections, iou_type)
  else:
    from pycocotools import coco  # pylint: disable=g-import-not-at-top
    from backbone_reuse.evaluation import coco_metrics  # pylint: disable=g-import-not-at-top
    coco_ground_truth = coco.COCO()
    coco_ground_truth.dataset = ground_truth
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON.
      coco_ground_truth.createIndex()
    metrics = coco_metrics.evaluate(coco_ground_truth, detections, iou_type)
  seconds = time.perf_counter() - start
  from backbone_reuse.evaluation import stratified  # pylint: disable=g-import-not-at-top
  by_class = stratified.stratify(metrics, ground_truth, training_set)
  if plot_file:
    stratified.plot_per_class(
        {f'{dataset} {iou_type}': by_class}, plot_file,
        title=f'Per-class AP: {os.path.basename(detections_file)}')
  return dict(
      dataset=dataset, iou_type=iou_type,
      num_images=len(ground_truth['images']), num_detections=len(detections),
      evaluation_seconds=round(seconds, 3), **metrics, stratified=by_class)
