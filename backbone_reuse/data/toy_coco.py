r"""Generates the toy COCO-format set the smoke configs train on.

  python -m backbone_reuse.data.toy_coco [--output_dir=runs/toy_coco]

Writes raw/{train,val}/annotations.json + PNGs (synthetic shapes) and converts
them to {train,val}-*.tfrecord with Model Garden's COCO converter.
"""
import os

from absl import app
from absl import flags
from absl import logging

from backbone_reuse.data import coco_tfrecord
from backbone_reuse.data import shapes

_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'runs/toy_coco',
                                  'Where the toy set is written.')
_SPLITS = {'train': (64, 0), 'val': (16, 1)}  # split: (images, seed)


def make(output_dir: str, image_size: int = 64) -> dict:
  """Writes both splits; returns {split: TFRecord glob}."""
  patterns = {}
  for split, (num_images, seed) in _SPLITS.items():
    split_dir = os.path.join(output_dir, 'raw', split)
    annotation_file, image_dir = shapes.write_coco_dataset(
        split_dir, num_images, image_size=image_size, seed=seed)
    patterns[split] = coco_tfrecord.convert(
        annotation_file, image_dir, os.path.join(output_dir, split))
    logging.info('%s: %d images -> %s', split, num_images, patterns[split])
  return patterns


def main(_):
  for split, pattern in make(_OUTPUT_DIR.value).items():
    print(f'{split}: {pattern}')


if __name__ == '__main__':
  app.run(main)
