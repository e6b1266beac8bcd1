"""Runs a detection model over a dataset and returns COCO-format results."""
from typing import Dict, List

import numpy as np
from official.vision.evaluation import coco_utils
import tensorflow as tf
import tqdm


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
      image_info = labels['image_info'].numpy()
      batch = {
          'source_id': [labels['groundtruths']['source_id'].numpy()],
          'image_info': [image_info],
          # Back to original image pixels, as Model Garden's evaluator does.
          'detection_boxes': [outputs['detection_boxes'].numpy() / np.tile(
              image_info[:, 2:3, :], (1, 1, 2))],
          'detection_classes': [outputs['detection_classes'].numpy()],
          'detection_scores': [outputs['detection_scores'].numpy()],
      }
      if 'detection_masks' in outputs:
        batch['detection_masks'] = [outputs['detection_masks'].numpy()]
      results.extend(coco_utils.convert_predictions_to_coco_annotations(batch))
      progress.update(image_info.shape[0])
  return [_plain(r) for r in results if r['score'] > 0]


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
