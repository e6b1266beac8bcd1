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


def draw(pixels: np.ndarray, detections: List[Dict], names: Dict[int, str],
         score_threshold: float = 0.5, scale: int = 3,
         title: str = '', show_scores: bool = True) -> Image.Image:
  """One image with its confident detections (boxes, masks, class names).

  Args:
    pixels: [height, width, 3] image.
    detections: COCO results of this image (`bbox`, `score`, `category_id`,
      optional RLE `segmentation`); ground truth passes with score 1.
    names: category id -> name.
    score_threshold: detections below it are not drawn.
    scale: upsampling factor, so labels stay readable on small images.
    title: written in the top-left corner when given.
    show_scores: write each score after the class name.

  Returns:
    The drawn tile.
  """
  pixels = np.asarray(pixels, dtype=np.float64).copy()
  height, width = pixels.shape[:2]
  mine = [d for d in detections if d['score'] >= score_threshold]
  for det in mine:
    if 'segmentation' in det:
      mask = mask_api.decode(det['segmentation']).astype(bool)
      pixels[mask] = 0.5 * pixels[mask] + 0.5 * np.array(
          _colour(det['category_id']))
  tile = Image.fromarray(pixels.astype(np.uint8)).resize(
      (width * scale, height * scale), Image.NEAREST)
  canvas = ImageDraw.Draw(tile)
  for det in mine:
    x, y, w, h = (v * scale for v in det['bbox'])
    colour = _colour(det['category_id'])
    canvas.rectangle([x, y, x + w, y + h], outline=colour, width=2)
    label = names.get(det['category_id'], str(det['category_id']))
    if show_scores:
      label = f"{label} {det['score']:.2f}"
    canvas.text((x + 2, y + 1), label, fill=colour)
  if title:
    canvas.text((3, 2), title, fill='white', stroke_width=1,
                stroke_fill='black')
  return tile


def row(tiles: Sequence[Image.Image], gap: int = 4) -> Image.Image:
  """Tiles side by side on white, top-aligned."""
  width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
  grid = Image.new('RGB', (width, max(t.height for t in tiles)), 'white')
  x = 0
  for tile in tiles:
    grid.paste(tile, (x, 0))
    x += tile.width + gap
  return grid


def draw_predictions(image_dir: str, images: Sequence[Dict],
                     detections: List[Dict], names: Dict[int, str],
                     output_path: str, score_threshold: float = 0.5,
                     scale: int = 3) -> str:
  """Writes a one-row grid of `images` (COCO image dicts whose `file_name`s
  are in `image_dir`) with their confident detections; returns the path."""
  tiles = []
  for image in images:
    pixels = Image.open(os.path.join(image_dir, image['file_name'])).convert(
        'RGB')
    mine = [d for d in detections if d['image_id'] == image['id']]
    tiles.append(draw(np.asarray(pixels), mine, names, score_threshold,
                      scale))
  row(tiles).save(output_path)
  return output_path
