"""Draws predicted boxes and masks on a few images (people would rather look)."""
import colorsys
import os
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw
from pycocotools import mask as mask_api


def _colour(category_id: int):
  red, green, blue = colorsys.hsv_to_rgb((category_id * 0.618) % 1.0, 0.9, 1)
  return int(red * 255), int(green * 255), int(blue * 255)


def draw_predictions(image_dir: str, images: Sequence[Dict],
                     detections: List[Dict], names: Dict[int, str],
                     output_path: str, score_threshold: float = 0.5,
                     scale: int = 3) -> str:
  """Writes a one-row grid of `images` with their confident detections.

  Args:
    image_dir: folder of the images' `file_name`s.
    images: COCO image dicts to draw.
    detections: COCO results (`bbox`, `score`, `category_id`, optional RLE
      `segmentation`).
    names: category id -> name.
    output_path: PNG to write.
    score_threshold: detections below it are not drawn.
    scale: upsampling factor, so labels stay readable on small images.

  Returns:
    `output_path`.
  """
  tiles = []
  for image in images:
    pixels = np.asarray(Image.open(
        os.path.join(image_dir, image['file_name'])).convert('RGB'),
                        dtype=np.float64)
    mine = [d for d in detections if d['image_id'] == image['id'] and
            d['score'] >= score_threshold]
    for det in mine:
      if 'segmentation' in det:
        mask = mask_api.decode(det['segmentation']).astype(bool)
        pixels[mask] = 0.5 * pixels[mask] + 0.5 * np.array(
            _colour(det['category_id']))
    tile = Image.fromarray(pixels.astype(np.uint8)).resize(
        (image['width'] * scale, image['height'] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    for det in mine:
      x, y, w, h = (v * scale for v in det['bbox'])
      colour = _colour(det['category_id'])
      draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
      draw.text((x + 2, y + 1),
                f"{names[det['category_id']]} {det['score']:.2f}",
                fill=colour)
    tiles.append(tile)
  width = sum(t.width for t in tiles) + 4 * (len(tiles) - 1)
  grid = Image.new('RGB', (width, max(t.height for t in tiles)), 'white')
  x = 0
  for tile in tiles:
    grid.paste(tile, (x, 0))
    x += tile.width + 4
  grid.save(output_path)
  return output_path
