r"""The toy COCO-format set the smoke configs and tests train on.

  python -m backbone_reuse.shapes.toy_coco [--output_dir=runs/toy_coco]

Coloured squares, triangles and circles on noise, 1-3 per image, each drawn
as a polygon that is also its instance mask; deterministic given a seed.
Writes raw/{train,val}/annotations.json + PNGs (readable with pycocotools)
and converts them to {train,val}-*.tfrecord with Model Garden's COCO
converter. (Not the Shapes world: just enough data to exercise the pipeline.)
"""
import json
import os
from typing import Dict, List, Tuple

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw

from backbone_reuse.data import coco_conversion
from backbone_reuse.shapes import world as shapes_world

_SPLITS = {'train': (64, 0), 'val': (16, 1)}  # split: (images, seed)
CLASSES = ('square', 'triangle', 'circle')


def write_coco_dataset(output_dir: str, num_images: int, image_size: int = 64,
                       seed: int = 0) -> Tuple[str, str]:
  """Writes images and `annotations.json` under `output_dir`.

  Args:
    output_dir: created if missing.
    num_images: number of images.
    image_size: square image side in pixels.
    seed: random seed; the same seed gives the same files.

  Returns:
    (annotation file path, image directory).
  """
  rng = np.random.default_rng(seed)
  image_dir = os.path.join(output_dir, 'images')
  os.makedirs(image_dir, exist_ok=True)
  images: List[Dict] = []
  annotations: List[Dict] = []
  for image_id in range(1, num_images + 1):
    pixels = rng.integers(0, 60, (image_size, image_size, 3), dtype=np.uint8)
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(1, 4)):
      category = int(rng.integers(len(CLASSES)))
      r = float(rng.uniform(0.12, 0.25) * image_size)
      cx, cy = rng.uniform(r, image_size - r, size=2)
      points = [tuple(p) for p in shapes_world.place_shape(
          rng, CLASSES[category], (cx, cy), r)]
      colour = tuple(int(c) for c in rng.integers(120, 256, size=3))
      draw.polygon(points, fill=colour)
      xs, ys = zip(*points)
      x0, y0 = max(min(xs), 0.0), max(min(ys), 0.0)
      x1 = min(max(xs), float(image_size))
      y1 = min(max(ys), float(image_size))
      annotations.append({
          'id': len(annotations) + 1,
          'image_id': image_id,
          'category_id': category + 1,
          'bbox': [x0, y0, x1 - x0, y1 - y0],
          'area': (x1 - x0) * (y1 - y0),
          'segmentation': [[v for p in points for v in p]],
          'iscrowd': 0,
      })
    file_name = f'{image_id:06d}.png'
    canvas.save(os.path.join(image_dir, file_name))
    images.append({'id': image_id, 'file_name': file_name,
                   'height': image_size, 'width': image_size})
  categories = [{'id': i + 1, 'name': n, 'supercategory': 'shape'}
                for i, n in enumerate(CLASSES)]
  annotation_file = os.path.join(output_dir, 'annotations.json')
  with open(annotation_file, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': categories}, f)
  return annotation_file, image_dir




def make(output_dir: str, image_size: int = 64) -> dict:
  """Writes both splits and converts them together; returns {split:
  TFRecord glob}."""
  jobs = []
  for split, (num_images, seed) in _SPLITS.items():
    annotation_file, image_dir = write_coco_dataset(
        os.path.join(output_dir, 'raw', split), num_images,
        image_size=image_size, seed=seed)
    jobs.append({'annotation_file': annotation_file, 'image_dir': image_dir,
                 'output_prefix': os.path.join(output_dir, split)})
  patterns = dict(zip(_SPLITS, coco_conversion.convert_each(jobs)))
  for split, pattern in patterns.items():
    logging.info('%s: %d images -> %s', split, _SPLITS[split][0], pattern)
  return patterns


def main(_):
  for split, pattern in make(flags.FLAGS.output_dir).items():
    print(f'{split}: {pattern}')


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('output_dir', 'runs/toy_coco',
                      'Where the toy set is written.')
  app.run(main)
