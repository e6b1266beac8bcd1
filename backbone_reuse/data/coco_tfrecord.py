"""COCO-format JSON + images -> TFRecords, with Model Garden's own converter.

This runs `official.vision.data.create_coco_tf_record` (the tool a COCO user
runs) in a subprocess, so our data goes through exactly the same code path as
COCO does, and checks that every image became a record.
"""
import subprocess
import sys

import tensorflow as tf


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
    RuntimeError: the converter failed; its stderr tail is included.
  """
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
  return pattern
