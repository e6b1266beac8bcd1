r"""Training-input throughput with and without Copy-Paste on the Shapes world.

  python experiments/copy_paste_throughput.py [--data_dir=runs/shapes_throughput] \
    [--batches=50] [--repeats=3]

Writes a Shapes detection set (800 training scenes, as the demo) unless
--data_dir already has one, builds `shapes_maskrcnn`'s training input exactly
as training does (Model Garden's decoder and parser; Copy-Paste via
task.train_data.parser.copy_paste.enabled), and times `--batches` batches of 8
after 5 warm-up batches. Prints one JSON object: median images/s of each.
"""
import argparse
import glob
import json
import os
import statistics
import time

from official.core import exp_factory
from official.core import task_factory

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.data import coco_conversion
from backbone_reuse.shapes import world as shapes_world


def _data(data_dir):
  pattern = os.path.join(data_dir, 'train-*')
  if not glob.glob(pattern):
    annotations, images, _ = shapes_world.write_detection_split(
        os.path.join(data_dir, 'train'), 800, 1,
        shapes_world.long_tail_weights(0))
    coco_conversion.convert(annotations, images, os.path.join(data_dir, 'train'))
  return pattern


def images_per_second(pattern, copy_paste, batches):
  params = exp_factory.get_exp_config('shapes_maskrcnn')
  params.override({'task': {'train_data': {
      'input_path': pattern, 'parser': {'copy_paste': {'enabled': copy_paste}}}}})
  task = task_factory.get_task(params.task)
  iterator = iter(task.build_inputs(params.task.train_data))
  for _ in range(5):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    images, _ = next(iterator)
  return batches * int(images.shape[0]) / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default='runs/shapes_throughput')
  parser.add_argument('--batches', type=int, default=50)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  pattern = _data(args.data_dir)
  result = {'batch_size': 8, 'batches': args.batches,
            'repeats': args.repeats}
  for name, enabled in (('without_copy_paste', False),
                        ('with_copy_paste', True)):
    result[f'{name}_images_per_second'] = round(statistics.median(
        images_per_second(pattern, enabled, args.batches)
        for _ in range(args.repeats)), 1)
  print(json.dumps(result))


if __name__ == '__main__':
  main()
