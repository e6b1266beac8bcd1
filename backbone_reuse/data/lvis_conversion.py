"""LVIS v1 JSON + COCO image folders -> TFRecords (the library; its command
line, and what each record holds: data/lvis_tfrecord.py).
"""
import collections
import json
import os
import urllib.parse
from typing import Dict, List, Sequence

from absl import logging
from official.vision.data import create_coco_tf_record
from official.vision.data import tfrecord_lib
import tensorflow as tf

from backbone_reuse.data import category_map as category_map_lib

FEDERATED_FIELDS = ('neg_category_ids', 'not_exhaustive_category_ids')
CATEGORY_FIELDS = ('frequency', 'image_count', 'instance_count')


def image_file_name(image: Dict) -> str:
  """The image's file name: `file_name`, else the last part of `coco_url`."""
  if image.get('file_name'):
    return os.path.basename(image['file_name'])
  if image.get('coco_url'):
    return os.path.basename(urllib.parse.urlparse(image['coco_url']).path)
  raise ValueError(f'image {image.get("id")!r} has neither file_name nor '
                   'coco_url; one is needed to find its pixels.')


def _example(image: Dict, annotations: List[Dict], image_dirs: Sequence[str],
             names: Dict[int, str], include_masks: bool):
  """One tf.Example: Model Garden's COCO features + the federated fields."""
  example, skipped = create_coco_tf_record.create_tf_example(
      dict(image, file_name=image_file_name(image)), list(image_dirs),
      bbox_annotations=annotations, id_to_name_map=names,
      include_masks=include_masks)
  for field in FEDERATED_FIELDS:
    example.features.feature[f'image/{field}'].int64_list.value.extend(
        int(c) for c in image.get(field, ()))
  return example, skipped


def categories_file(output_prefix: str) -> str:
  return f'{output_prefix}_categories.json'


def convert(annotation_file: str, image_dirs: Sequence[str],
            output_prefix: str, num_shards: int = 1,
            include_masks: bool = True, num_processes: int = 0) -> str:
  """Writes `{output_prefix}-0000i-of-0000n.tfrecord` + the categories file.

  Args:
    annotation_file: LVIS-format JSON (LVIS v1, or the Shapes world's).
    image_dirs: folders holding the images (searched in order; a name must
      be in exactly one of them).
    output_prefix: path prefix of the shards.
    num_shards: number of output files.
    include_masks: encode instance masks (Mask R-CNN needs them).
    num_processes: worker processes (0: in this process).

  Returns:
    A glob pattern matching the shards (use as `input_path`).

  Raises:
    ValueError: a required LVIS field is missing, or an annotation names an
      unknown category.
  """
  with tf.io.gfile.GFile(annotation_file) as f:
    dataset = json.load(f)
  for image in dataset['images']:
    missing = [f for f in FEDERATED_FIELDS if f not in image]
    if missing:
      raise ValueError(
          f'{annotation_file}: image {image.get("id")!r} lacks {missing}; '
          'an LVIS-format file is needed (for COCO, use '
          'backbone_reuse.data.coco_tfrecord).')
  categories = category_map_lib.CategoryMap(
      c['id'] for c in dataset['categories'])
  names = {categories.class_index(c['id']): c['name']
           for c in dataset['categories']}
  by_image = collections.defaultdict(list)
  for annotation in dataset['annotations']:
    by_image[annotation['image_id']].append(dict(
        annotation, iscrowd=annotation.get('iscrowd', 0),  # LVIS has none.
        category_id=categories.class_index(annotation['category_id'])))
  tf.io.gfile.makedirs(os.path.dirname(output_prefix) or '.')
  jobs = ((image, by_image[image['id']], tuple(image_dirs), names,
           include_masks) for image in dataset['images'])
  skipped = tfrecord_lib.write_tf_record_dataset(
      output_prefix, jobs, _example, num_shards,
      multiple_processes=num_processes)
  if skipped:
    logging.warning('%s: skipped %d annotations with an empty or '
                    'out-of-image box.', annotation_file, skipped)
  with tf.io.gfile.GFile(categories_file(output_prefix), 'w') as f:
    json.dump([dict({k: c.get(k) for k in CATEGORY_FIELDS}, id=c['id'],
                    name=c['name'],
                    class_index=categories.class_index(c['id']))
               for c in dataset['categories']], f, indent=1)
  return f'{output_prefix}-*'


def decode_federated_fields(serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Reads the fields this converter adds to Model Garden's features."""
  parsed = tf.io.parse_single_example(
      serialized, {f'image/{field}': tf.io.VarLenFeature(tf.int64)
                   for field in FEDERATED_FIELDS})
  return {field: tf.sparse.to_dense(parsed[f'image/{field}'])
          for field in FEDERATED_FIELDS}
