"""COCO-format JSON + images -> TFRecords (the library; its command line is
data/coco_tfrecord.py, which says what is checked and how).

Category ids are kept as the records' labels (Model Garden's convention).
"""
from concurrent import futures
import json
import os
import subprocess
import sys
from typing import Dict, List, Mapping, Sequence

import tensorflow as tf

from backbone_reuse import errors

_REQUIRED = {'images': ('id', 'file_name', 'height', 'width'),
             'annotations': ('image_id', 'category_id', 'bbox'),
             'categories': ('id', 'name')}
_MISSING_SHOWN = 5


def check_annotations(annotation_file: str, image_dir: str) -> Dict:
  """The parsed JSON, if it is COCO instances whose images are all in
  `image_dir`.

  Raises:
    errors.BadInput: one line naming the file and what is wrong.
  """
  if not tf.io.gfile.exists(annotation_file):
    raise errors.BadInput(f'--annotation_file={annotation_file!r} does not '
                          'exist.')
  try:
    with tf.io.gfile.GFile(annotation_file) as f:
      dataset = json.load(f)
  except json.JSONDecodeError as e:
    raise errors.BadInput(f'{annotation_file} is not JSON ({e.msg} at line '
                          f'{e.lineno}); accepted: a COCO instances file.'
                          ) from None
  if not isinstance(dataset, dict):
    raise errors.BadInput(f'{annotation_file} holds a JSON '
                          f'{type(dataset).__name__}, not a COCO instances '
                          'object (with images, annotations, categories).')
  for section, fields in _REQUIRED.items():
    entries = dataset.get(section)
    if not isinstance(entries, list):
      raise errors.BadInput(
          f'{annotation_file} has no {section!r} list; accepted: a COCO '
          f'instances file (images, annotations, categories; e.g. '
          'instances_train2017.json, not captions or a results file).')
    for index, entry in enumerate(entries):
      missing = [k for k in fields if k not in entry]
      if missing:
        raise errors.BadInput(
            f'{annotation_file}: {section}[{index}] lacks {missing}; COCO '
            f'{section} need {list(fields)}.')
  if not dataset['categories']:
    raise errors.BadInput(f'{annotation_file} lists no categories.')
  known = {c['id'] for c in dataset['categories']}
  unknown = sorted({a['category_id'] for a in dataset['annotations']} - known)
  if unknown:
    raise errors.BadInput(f'{annotation_file}: annotations use category ids '
                          f'{unknown[:_MISSING_SHOWN]} that no category has.')
  if not tf.io.gfile.isdir(image_dir):
    raise errors.BadInput(f'--image_dir={image_dir!r} is not a folder.')
  present = set(tf.io.gfile.listdir(image_dir))
  missing = [i['file_name'] for i in dataset['images']
             if os.path.basename(i['file_name']) not in present]
  if missing:
    raise errors.BadInput(
        f'{len(missing)} of the {len(dataset["images"])} images '
        f'{annotation_file} lists are not in {image_dir}, e.g. '
        f'{", ".join(missing[:_MISSING_SHOWN])}.')
  return dataset


def convert(annotation_file: str, image_dir: str, output_prefix: str,
            num_shards: int = 1, include_masks: bool = True) -> str:
  """Writes `{output_prefix}-0000i-of-0000n.tfrecord` shards.

  Args:
    annotation_file: COCO-format instances JSON.
    image_dir: folder holding the JSON's `file_name`s.
    output_prefix: path prefix of the shards.
    num_shards: number of output files.
    include_masks: encode instance masks (needed by Mask R-CNN).

  Returns:
    A glob pattern matching the shards (use as `input_path`).

  Raises:
    errors.BadInput: the JSON or the image folder is unusable
      (`check_annotations`).
    RuntimeError: the converter failed; its stderr tail is included.
  """
  dataset = check_annotations(annotation_file, image_dir)
  command = [
      sys.executable, '-m', 'official.vision.data.create_coco_tf_record',
      f'--image_dir={image_dir}',
      f'--object_annotations_file={annotation_file}',
      f'--output_file_prefix={output_prefix}',
      f'--num_shards={num_shards}',
      f'--include_masks={str(include_masks).lower()}',
      '--num_processes=0',
  ]
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  pattern = f'{output_prefix}-*'
  if result.returncode != 0 or not tf.io.gfile.glob(pattern):
    raise RuntimeError(
        f'create_coco_tf_record failed for {annotation_file!r} '
        f'(exit {result.returncode}):\n{result.stderr[-2000:]}')
  records = sum(1 for f in tf.io.gfile.glob(pattern)
                for _ in tf.data.TFRecordDataset(f))
  if records != len(dataset['images']):
    raise RuntimeError(f'create_coco_tf_record wrote {records} records for '
                       f'the {len(dataset["images"])} images of '
                       f'{annotation_file}.')
  return pattern


def convert_each(jobs: Sequence[Mapping]) -> List[str]:
  """`convert(**job)` for every job, all at once; the globs in job order.

  Each conversion is a subprocess that spends most of its time importing
  TensorFlow (the toy COCO set's two splits, profiled: 12.9 s of 13.2 s
  waiting on them one after the other; wall 13.4 s, at once 7.1 s). One
  thread per job: callers pass a dataset's few splits. The first failure
  is raised after every conversion has ended.
  """
  with futures.ThreadPoolExecutor(max(len(jobs), 1)) as pool:
    return list(pool.map(lambda job: convert(**job), jobs))
