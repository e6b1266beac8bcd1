"""Federated LVIS-format ground truth and detections for the LVIS tests.

Built from a Shapes-world split (every category rare, common or frequent) and
made federated: some images leave categories unverified (neither present nor
negative), some mark present categories not exhaustive, one image has no
objects; detections mix jittered true objects, duplicates and false positives
in negative, unverified and not-exhaustive categories, and one image gets
more than 300.
"""
import copy
import json
import os

import numpy as np
from pycocotools import mask as mask_utils

from backbone_reuse.shapes import world as shapes_world


def federated_split(root: str, num_images: int = 60, seed: int = 3):
  """Writes train + val splits; returns (val annotation path, val dict)."""
  weights = shapes_world.long_tail_weights(0)
  _, _, frequencies = shapes_world.write_detection_split(
      os.path.join(root, 'train'), 200, seed, weights)
  path, _, _ = shapes_world.write_detection_split(
      os.path.join(root, 'val'), num_images, seed + 1, weights, frequencies)
  with open(path) as f:
    ground_truth = json.load(f)
  rng = np.random.default_rng(seed)
  present = {}
  for annotation in ground_truth['annotations']:
    present.setdefault(annotation['image_id'], set()).add(
        annotation['category_id'])
  for image in ground_truth['images']:
    negatives = image['neg_category_ids']
    # A third of the images verify only half of their absent categories.
    if image['id'] % 3 == 0:
      image['neg_category_ids'] = sorted(
          rng.choice(negatives, len(negatives) // 2, replace=False).tolist())
    # A quarter mark one present category as not exhaustively annotated.
    if image['id'] % 4 == 1 and present.get(image['id']):
      image['not_exhaustive_category_ids'] = [min(present[image['id']])]
  # The last image loses its objects: an empty image, all classes negative.
  empty = ground_truth['images'][-1]['id']
  ground_truth['annotations'] = [a for a in ground_truth['annotations']
                                 if a['image_id'] != empty]
  ground_truth['images'][-1]['neg_category_ids'] = list(
      range(1, len(shapes_world.CLASSES) + 1))
  ground_truth['images'][-1]['not_exhaustive_category_ids'] = []
  federated = os.path.join(root, 'federated.json')
  with open(federated, 'w') as f:
    json.dump(ground_truth, f)
  return federated, ground_truth


def detections(ground_truth: dict, seed: int = 0, crowded_image: int = 1,
               crowded_count: int = 320):
  """Result dicts with boxes and RLE masks (see module docstring)."""
  rng = np.random.default_rng(seed)
  size = shapes_world.DETECTION_SIZE
  num_classes = len(shapes_world.CLASSES)
  results = []

  def add(image_id, category_id, box):
    x, y, w, h = (float(v) for v in box)
    x, y = max(x, 0.0), max(y, 0.0)
    w, h = max(min(w, size - x), 1.0), max(min(h, size - y), 1.0)
    rle = mask_utils.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]],
                                 size, size)[0]
    results.append({
        'image_id': image_id, 'category_id': category_id,
        'bbox': [x, y, w, h], 'score': float(rng.uniform(0.01, 1.0)),
        'segmentation': {'size': rle['size'],
                         'counts': rle['counts'].decode()}})

  for annotation in ground_truth['annotations']:
    if rng.random() < 0.15:
      continue  # Missed.
    box = np.array(annotation['bbox']) + rng.normal(0, 2.0, 4)
    add(annotation['image_id'], annotation['category_id'], box)
    if rng.random() < 0.2:  # Duplicate.
      add(annotation['image_id'], annotation['category_id'],
          box + rng.normal(0, 3.0, 4))
  for image in ground_truth['images']:
    for _ in range(int(rng.integers(2, 8))):
      add(image['id'], int(rng.integers(1, num_classes + 1)),
          [rng.uniform(0, size - 10), rng.uniform(0, size - 10),
           rng.uniform(5, 60), rng.uniform(5, 60)])
  for _ in range(crowded_count):
    add(crowded_image, int(rng.integers(1, num_classes + 1)),
        [rng.uniform(0, size - 10), rng.uniform(0, size - 10),
         rng.uniform(5, 60), rng.uniform(5, 60)])
  return copy.deepcopy(results)
