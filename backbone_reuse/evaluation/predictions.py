"""Runs a detection model over a dataset and returns COCO-format results."""
from typing import Dict, List

import numpy as np
from official.vision.evaluation import coco_utils
import tensorflow as tf
import tqdm

# What a detector's outputs must hold for COCO results (masks if any).
OUTPUT_KEYS = ('detection_boxes', 'detection_classes', 'detection_scores',
               'detection_masks')


def predict(task, model, data_config, num_examples: int) -> List[Dict]:
  """COCO result dicts (boxes in original image pixels; RLE masks if any).

  Args:
    task: the Model Garden detection task that built `model`.
    model: a trained detection model.
    data_config: the validation data config.
    num_examples: images in the dataset (for the progress bar).

  Returns:
    One dict per detection with `image_id`, `category_id`, `bbox`, `score`
    and, for Mask R-CNN, `segmentation`.
  """
  dataset = task.build_inputs(data_config)

  @tf.function
  def infer(images, labels):
    return model(images, image_shape=labels['image_info'][:, 1, :],
                 anchor_boxes=labels['anchor_boxes'], training=False)

  results = []
  with tqdm.tqdm(total=num_examples, desc='evaluate', unit='img',
                 leave=False) as progress:
    for images, labels in dataset:
      outputs = infer(images, labels)
      results.extend(coco_results(
          labels['groundtruths']['source_id'].numpy(),
          labels['image_info'].numpy(),
          {k: outputs[k].numpy() for k in OUTPUT_KEYS if k in outputs}))
      progress.update(images.shape[0])
  return results


def coco_results(source_ids: np.ndarray, image_info: np.ndarray,
                 outputs: Dict[str, np.ndarray]) -> List[Dict]:
  """One batch of detector outputs as COCO result dicts.

  Args:
    source_ids: [batch] image ids.
    image_info: [batch, 4, 2] Model Garden's resize record (original size,
      scaled size, scale, offset).
    outputs: the detector's `detection_boxes` [batch, N, 4] (scaled-image
      pixels, ymin/xmin/ymax/xmax), `detection_classes`, `detection_scores`
      [batch, N] and, for Mask R-CNN, `detection_masks` [batch, N, h, w].

  Returns:
    Dicts with `image_id`, `category_id` (the class index), `bbox` (original
    image pixels, x/y/w/h, inside the image), `score` and, with masks, an RLE `segmentation`
    pasted at original size; padding (score 0) left out.
  """
  batch = {
      'source_id': [source_ids],
      'image_info': [image_info],
      # Back to original image pixels, as Model Garden's evaluator does.
      'detection_boxes': [outputs['detection_boxes'] / np.tile(
          image_info[:, 2:3, :], (1, 1, 2))],
      'detection_classes': [outputs['detection_classes']],
      'detection_scores': [outputs['detection_scores']],
  }
  if 'detection_masks' in outputs:
    batch['detection_masks'] = [outputs['detection_masks']]
  results = coco_utils.convert_predictions_to_coco_annotations(batch)
  sizes = {int(i): [float(v) for v in info[0]]
           for i, info in zip(source_ids, image_info)}
  return [_clip(_plain(r), *sizes[int(r['image_id'])])
          for r in results if r['score'] > 0]


def _clip(result: Dict, height: float, width: float) -> Dict:
  """The box cut to the image. The detector may reach into the padding of
  a resized image (its boxes are clipped to the padded size); masks were
  pasted with the whole box and are already cut by the image."""
  x, y, w, h = result['bbox']
  x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
  x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
  result['bbox'] = [x0, y0, x1 - x0, y1 - y0]
  return result


def _plain(result: Dict) -> Dict:
  """numpy scalars -> Python, so results serialise to JSON."""
  out = {}
  for key, value in result.items():
    if isinstance(value, np.generic):
      value = value.item()
    elif isinstance(value, np.ndarray):
      value = value.tolist()
    out[key] = value
  if isinstance(out.get('segmentation', {}).get('counts'), bytes):
    out['segmentation'] = dict(out['segmentation'],
                               counts=out['segmentation']['counts'].decode())
  return out
