"""The Shapes world: a synthetic upstream classification set and a long-tailed
downstream detection set, generated locally and deterministically.

Vocabulary: 8 shapes x 5 colours = 40 classes ("red star", "blue cross", ...).
Objects vary in size, rotation, aspect and colour (hue/brightness jitter), sit
on textured, cluttered backgrounds (grey stripes, blobs and pixel noise) and
may be partially occluded by later objects, so that telling the 40 classes
apart takes learned features rather than a colour histogram.

Upstream (the paper's ImageNet/JFT): one object per 64x64 image, classes
balanced; its size is the "small vs large upstream set" axis. Written as
TFRecords of JPEGs for Model Garden's image-classification task.

Downstream (the paper's LVIS): 128x128 scenes of 1-5 objects with instance
masks; classes follow a long tail (Zipf over a seeded class order). Classes
are grouped the LVIS way by the number of training images they appear in:
rare <= 10, common 11-50, frequent > 50 (LVIS uses 10 and 100 on 100k images;
our sets are ~100x smaller). Every class appears in train and in val. Written
as COCO-format JSON with LVIS fields (category `frequency`, `image_count`,
`instance_count`; image `neg_category_ids`, `not_exhaustive_category_ids`)
plus JPEGs; masks are polygons tracing the visible part of each object (an
occluder never leaves a hole), and `area` / `bbox` are those of the mask
pycocotools rasterises from the polygons.
"""
import collections
import io
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from PIL import ImageDraw
from pycocotools import mask as mask_api
import tensorflow as tf
import tqdm

SHAPES = ('circle', 'square', 'triangle', 'pentagon', 'hexagon', 'star',
          'cross', 'diamond')
COLOURS = {
    'red': (215, 45, 40),
    'green': (45, 170, 60),
    'blue': (50, 85, 215),
    'yellow': (225, 205, 45),
    'magenta': (200, 55, 195),
}
CLASSES = tuple(f'{c} {s}' for s in SHAPES for c in COLOURS)
RARE_MAX_IMAGES = 10
COMMON_MAX_IMAGES = 50
CLASSIFICATION_SIZE = 64
DETECTION_SIZE = 128
_MIN_VISIBLE = 0.5  # An occluded object keeps at least half its area.


def frequency_group(image_count: int) -> str:
  """LVIS-style group letter from the number of training images."""
  if image_count <= RARE_MAX_IMAGES:
    return 'r'
  return 'c' if image_count <= COMMON_MAX_IMAGES else 'f'


def _outline(shape: str, radius: float) -> np.ndarray:
  """Unit outline of `shape` scaled to `radius`: [N, 2] points around 0."""
  if shape in ('circle', 'square', 'triangle', 'pentagon', 'hexagon'):
    sides = {'circle': 28, 'square': 4, 'triangle': 3, 'pentagon': 5,
             'hexagon': 6}[shape]
    angles = 2 * np.pi * np.arange(sides) / sides
    points = np.stack([np.cos(angles), np.sin(angles)], 1)
  elif shape == 'star':
    angles = 2 * np.pi * np.arange(10) / 10
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    points = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
  elif shape == 'cross':
    a, b = 0.33, 1.0
    points = np.array([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
                       (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)])
  else:  # diamond
    points = np.array([(0, -1.0), (0.6, 0), (0, 1.0), (-0.6, 0)])
  return points * radius


def place_shape(rng, shape: str, centre, radius: float) -> np.ndarray:
  """Rotated, stretched outline at `centre`: [N, 2] (x, y) pixels."""
  points = _outline(shape, radius)
  points = points * np.array([rng.uniform(0.75, 1.33), 1.0])
  angle = rng.uniform(0, 2 * np.pi)
  rotation = np.array([[math.cos(angle), -math.sin(angle)],
                       [math.sin(angle), math.cos(angle)]])
  return points @ rotation.T + np.asarray(centre)


def _colour(rng, name: str) -> Tuple[int, int, int]:
  base = np.array(COLOURS[name], dtype=np.float64)
  jittered = base * rng.uniform(0.75, 1.15) + rng.normal(0, 14, 3)
  return tuple(int(v) for v in np.clip(jittered, 0, 255))


def _background(rng, size: int) -> Image.Image:
  """Low-saturation texture: a grey level, stripes, blobs and noise."""
  level = rng.uniform(60, 170)
  pixels = np.full((size, size, 3), level) + rng.normal(0, 6, 3)
  canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
  draw = ImageDraw.Draw(canvas)
  for _ in range(rng.integers(2, 7)):
    grey = int(np.clip(level + rng.normal(0, 45), 0, 255))
    tint = tuple(int(np.clip(grey + rng.normal(0, 8), 0, 255))
                 for _ in range(3))
    x0, y0, x1, y1 = rng.uniform(0, size, 4)
    if rng.random() < 0.5:
      draw.line([(x0, y0), (x1, y1)], fill=tint,
                width=int(rng.integers(1, 5)))
    else:
      r = rng.uniform(3, size / 6)
      draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tint)
  return canvas


def _noisy(canvas: Image.Image, rng) -> np.ndarray:
  pixels = np.asarray(canvas, dtype=np.float64)
  pixels = pixels + rng.normal(0, 7, pixels.shape)
  return np.clip(pixels, 0, 255).astype(np.uint8)


def _rasterise(polygon: np.ndarray, size: int) -> np.ndarray:
  mask = Image.new('L', (size, size), 0)
  ImageDraw.Draw(mask).polygon([tuple(p) for p in polygon], fill=1)
  return np.asarray(mask, dtype=bool)


def _has_hole(mask: np.ndarray) -> bool:
  _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                  cv2.CHAIN_APPROX_SIMPLE)
  return hierarchy is not None and bool((hierarchy[0][:, 3] != -1).any())


def _mask_polygons(mask: np.ndarray) -> List[List[float]]:
  contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                 cv2.CHAIN_APPROX_SIMPLE)
  return [c.reshape(-1).astype(float).tolist() for c in contours
          if len(c) >= 3]


def _polygons_mask(polygons: Sequence[Sequence[float]], size: int):
  """The mask COCO tools (pycocotools, LVIS API) read from the polygons."""
  rles = mask_api.frPyObjects([list(p) for p in polygons], size, size)
  return mask_api.decode(mask_api.merge(rles)).astype(bool)


def _jpeg(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='JPEG', quality=92)
  return buffer.getvalue()


def classification_example(rng, label: int) -> np.ndarray:
  """One 64x64 image of class `label`, possibly partly occluded by clutter."""
  colour, shape = CLASSES[label].split(' ')
  size = CLASSIFICATION_SIZE
  canvas = _background(rng, size)
  radius = rng.uniform(0.22, 0.4) * size
  centre = rng.uniform(size / 2 - 8, size / 2 + 8, 2)
  draw = ImageDraw.Draw(canvas)
  draw.polygon([tuple(p) for p in place_shape(rng, shape, centre, radius)],
               fill=_colour(rng, colour))
  if rng.random() < 0.3:  # A grey bar across part of the object.
    grey = int(rng.uniform(40, 200))
    x = rng.uniform(0, size)
    draw.line([(x, 0), (x + rng.uniform(-20, 20), size)],
              fill=(grey, grey, grey), width=int(rng.integers(3, 9)))
  return _noisy(canvas, rng)


def write_classification_tfrecords(output_prefix: str, num_images: int,
                                   seed: int, num_shards: int = 2) -> str:
  """Writes balanced upstream images as Model Garden classification records.

  Returns:
    The glob pattern of the shards.
  """
  tf.io.gfile.makedirs(os.path.dirname(output_prefix) or '.')
  rng = np.random.default_rng(seed)
  labels = np.arange(num_images) % len(CLASSES)
  rng.shuffle(labels)
  paths = [f'{output_prefix}-{i:05d}-of-{num_shards:05d}.tfrecord'
           for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  for index, label in enumerate(tqdm.tqdm(
      labels, desc=f'upstream {os.path.basename(output_prefix)}',
      unit='img', leave=False)):
    feature = {
        'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[_jpeg(classification_example(rng, int(label)))])),
        'image/format': tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[b'jpeg'])),
        'image/class/label': tf.train.Feature(
            int64_list=tf.train.Int64List(value=[int(label)])),
    }
    writers[index % num_shards].write(tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString())
  for writer in writers:
    writer.close()
  return f'{output_prefix}-*'


def long_tail_weights(seed: int, exponent: float = 1.3) -> np.ndarray:
  """Zipf weights over a seeded permutation of the classes (sum 1)."""
  order = np.random.default_rng(seed).permutation(len(CLASSES))
  weights = np.empty(len(CLASSES))
  weights[order] = 1.0 / np.arange(1, len(CLASSES) + 1) ** exponent
  return weights / weights.sum()


def _scene(rng, categories: Sequence[int]):
  """Draws objects of `categories` in order; returns pixels + annotations."""
  size = DETECTION_SIZE
  canvas = _background(rng, size)
  draw = ImageDraw.Draw(canvas)
  owner = np.full((size, size), -1)
  placed = []
  for category in categories:
    colour, shape = CLASSES[category].split(' ')
    for _ in range(20):  # Resample until earlier objects stay visible.
      radius = rng.uniform(0.08, 0.2) * size
      centre = rng.uniform(radius, size - radius, 2)
      polygon = place_shape(rng, shape, centre, radius)
      full = _rasterise(polygon, size)
      trial = np.where(full, len(placed), owner)
      if all((trial == i).sum() >= _MIN_VISIBLE * p['area_full'] and
             not _has_hole(trial == i) for i, p in enumerate(placed)):
        break
    else:
      continue
    owner = trial
    draw.polygon([tuple(p) for p in polygon], fill=_colour(rng, colour))
    placed.append({'category': category, 'area_full': full.sum()})
  annotations = []
  for index, item in enumerate(placed):
    visible = owner == index
    polygons = _mask_polygons(visible)
    if not polygons:
      continue
    mask = _polygons_mask(polygons, size)
    if not mask.any():
      continue
    ys, xs = np.nonzero(mask)
    annotations.append({
        'category_id': int(item['category']) + 1,
        'segmentation': polygons,
        'area': float(mask.sum()),
        'bbox': [float(xs.min()), float(ys.min()),
                 float(xs.max() - xs.min() + 1),
                 float(ys.max() - ys.min() + 1)],
        'iscrowd': 0,
    })
  return _noisy(canvas, rng), annotations


def _scene_categories(rng, num_images: int,
                      weights: np.ndarray) -> List[List[int]]:
  """Long-tailed classes per scene; every class leads one scene, so it is
  drawn first (never occluded below half) and shows in the split."""
  counts = rng.integers(1, 6, size=num_images)
  scenes = [list(rng.choice(len(CLASSES), size=n, p=weights)) for n in counts]
  slots = rng.permutation(num_images)
  for category in range(len(CLASSES)):
    scenes[slots[category]][0] = category
  return scenes


def write_detection_split(output_dir: str, num_images: int, seed: int,
                          weights: np.ndarray,
                          frequencies: Optional[Dict[int, str]] = None,
                          first_image_id: int = 1):
  """Writes a COCO/LVIS-format split: JPEGs under images/ + annotations.json.

  Args:
    output_dir: the split's folder.
    num_images: scenes to draw (>= number of classes, so every class shows).
    seed: random seed.
    weights: class sampling weights (long tail).
    frequencies: category id -> 'r'/'c'/'f'; computed from this split when
      None (i.e. for the training split).
    first_image_id: the first image's id (and file name); the others follow.
      Another split of the same world can so have ids disjoint from these.

  Returns:
    (annotation file, image directory, {category id: frequency letter}).
  """
  if num_images < len(CLASSES):
    raise ValueError(f'num_images={num_images} cannot show all '
                     f'{len(CLASSES)} classes; accepted: >= {len(CLASSES)}.')
  rng = np.random.default_rng(seed)
  image_dir = os.path.join(output_dir, 'images')
  os.makedirs(image_dir, exist_ok=True)
  images, annotations = [], []
  scenes = _scene_categories(rng, num_images, weights)
  for image_id, categories in enumerate(
      tqdm.tqdm(scenes, desc=f'detection {os.path.basename(output_dir)}',
                unit='img', leave=False), start=first_image_id):
    pixels, objects = _scene(rng, categories)
    file_name = f'{image_id:06d}.jpg'
    with open(os.path.join(image_dir, file_name), 'wb') as f:
      f.write(_jpeg(pixels))
    present = {o['category_id'] for o in objects}
    images.append({
        'id': image_id, 'file_name': file_name,
        'height': DETECTION_SIZE, 'width': DETECTION_SIZE,
        # Every object is annotated, so every absent class is a verified
        # negative and no class is non-exhaustive.
        'neg_category_ids': sorted(set(range(1, len(CLASSES) + 1)) - present),
        'not_exhaustive_category_ids': [],
    })
    for o in objects:
      annotations.append(dict(o, id=len(annotations) + 1, image_id=image_id))
  image_count = collections.Counter()
  instance_count = collections.Counter(a['category_id'] for a in annotations)
  for image in images:
    image_count.update(set(range(1, len(CLASSES) + 1)) -
                       set(image['neg_category_ids']))
  if frequencies is None:
    frequencies = {c: frequency_group(image_count[c])
                   for c in range(1, len(CLASSES) + 1)}
  categories = [{
      'id': i + 1, 'name': name, 'synset': name.replace(' ', '_'),
      'supercategory': name.split(' ')[1],
      'frequency': frequencies[i + 1],
      'image_count': image_count[i + 1],
      'instance_count': instance_count[i + 1],
  } for i, name in enumerate(CLASSES)]
  annotation_file = os.path.join(output_dir, 'annotations.json')
  with open(annotation_file, 'w') as f:
    json.dump({'info': {'description': 'Shapes world', 'seed': seed},
               'images': images, 'annotations': annotations,
               'categories': categories, 'licenses': []}, f)
  return annotation_file, image_dir, frequencies
