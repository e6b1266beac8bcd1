r"""Where a Shapes detector's training step goes, by component (issue 12).

  python experiments/shapes_step_time.py [--work_dir=/tmp/shapes_step_time] \
      [--steps=60] [--output=experiments/shapes/report/step_time.md]

Trains each variant for --steps steps (batch 8, 128 px, loops of 10 steps)
through the same path as the grid (shapes/runs.py) on one small Shapes
world, and reads the median seconds per step of the loops after the first
from each run's resources.json. Variants differ by one component each, so
the differences are what that component costs: the mask branch (Mask vs
Faster R-CNN), the backbone's backward pass (finetune vs freeze), the
decoder (FPN vs NAS-FPN), the cascade's two extra box heads, and NMS
(Model Garden's default padded NMS vs the batched NMS the Shapes detectors
use). Each variant's checkpoint is then evaluated on the world's val images
(runs.evaluate, as the grid and the demo do): seconds, build included.
"""
import os
import pathlib
import re
import time
from typing import Dict

from absl import app
from absl import flags
from official.modeling.hyperparams import params_dict

from backbone_reuse.analysis import resources
from backbone_reuse.shapes import demo
from backbone_reuse.shapes import runs

REPO = pathlib.Path(__file__).resolve().parents[1]
_WORK_DIR = flags.DEFINE_string('work_dir', '/tmp/shapes_step_time',
                                'Data and runs.')
_STEPS = flags.DEFINE_integer('steps', 60, 'Training steps per variant.')
_OUTPUT = flags.DEFINE_string(
    'output', str(REPO / 'experiments' / 'shapes' / 'report' /
                  'step_time.md'), 'Markdown table to write.')

# Model Garden's default NMS (what the Shapes detectors used before).
_PADDED_NMS = {'task': {'model': {
    'roi_generator': {'use_batched_nms': False},
    'detection_generator': {'nms_version': 'v2'}}}}

# (name, experiment, capacity, strategy[, overrides])
VARIANTS = (
    ('Faster R-CNN FPN, frozen, padded NMS', 'shapes_fasterrcnn', 'fpn',
     'freeze', _PADDED_NMS),
    ('Cascade R-CNN NAS-FPN, fine-tuned, padded NMS', 'shapes_fasterrcnn',
     'nasfpn_cascade', 'finetune', _PADDED_NMS),
    ('Mask R-CNN FPN, frozen', 'shapes_maskrcnn', 'fpn', 'freeze'),
    ('Faster R-CNN FPN, frozen', 'shapes_fasterrcnn', 'fpn', 'freeze'),
    ('Faster R-CNN FPN, fine-tuned', 'shapes_fasterrcnn', 'fpn', 'finetune'),
    ('Faster R-CNN NAS-FPN, frozen', 'shapes_fasterrcnn', 'nasfpn', 'freeze'),
    ('Faster R-CNN NAS-FPN, fine-tuned', 'shapes_fasterrcnn', 'nasfpn',
     'finetune'),
    ('Cascade R-CNN NAS-FPN, frozen', 'shapes_fasterrcnn', 'nasfpn_cascade',
     'freeze'),
    ('Cascade R-CNN NAS-FPN, fine-tuned', 'shapes_fasterrcnn',
     'nasfpn_cascade', 'finetune'),
)


def main(_):
  root = _WORK_DIR.value
  world = demo.Demo(root, demo.Scale(upstream_train=400, upstream_val=40,
                                     detection_train=200, detection_val=40,
                                     upstream_steps=20, detector_steps=0))
  world.make_data()
  upstream = world.upstream_training()
  runs.train(upstream, world.path('upstream'), 'train', 'upstream')
  detection = os.path.join(world.data, 'detection')
  rows = []
  for name, experiment, capacity, strategy, *extra in VARIANTS:
    overrides = _merged(
        {'task': {'init_checkpoint': world.path('upstream'),
                  'annotation_file': os.path.join(detection, 'val',
                                                  'annotations.json'),
                  'train_data': {'input_path': detection + '/train-*'},
                  'validation_data': {'input_path': detection + '/val-*'}},
         'trainer': {'train_steps': _STEPS.value, 'steps_per_loop': 10,
                     'summary_interval': 10,
                     'checkpoint_interval': _STEPS.value}}, *extra)
    training = runs.Training(
        experiment,
        (str(REPO / 'configs' / 'shapes' / 'capacity' / f'{capacity}.yaml'),
         str(REPO / 'configs' / 'strategies' / f'{strategy}.yaml')),
        overrides, seed=0)
    model_dir = os.path.join(root, 'runs', re.sub(r'\W+', '_', name))
    start = time.time()
    runs.train(training, model_dir, 'train', name)
    seconds = runs.load_json(model_dir, resources.FILENAME)[
        'median_step_seconds']
    start_evaluation = time.time()
    runs.evaluate(training, model_dir, world.scale.detection_val)
    evaluation = time.time() - start_evaluation
    rows.append((name, seconds, evaluation))
    print(f'{name}: {seconds:.3f} s/step, evaluation {evaluation:.1f} s '
          f'({time.time() - start:.0f} s)', flush=True)
  reference = dict((name, seconds) for name, seconds, _ in rows)[
      'Mask R-CNN FPN, frozen']
  text = '\n'.join([
      '# Shapes detector: training step time by component', '',
      f'Produced by `python experiments/shapes_step_time.py` (this 2-core '
      f'CPU, one process after another): {_STEPS.value} steps of batch 8 '
      'at 128 px per variant, median seconds per step over the 10-step '
      'loops after the first; then the evaluation of the last checkpoint '
      f'on {world.scale.detection_val} val images (model build, restore, '
      'inference, COCO metrics).', '',
      '| variant | s / step | relative to Mask R-CNN FPN, frozen | '
      'evaluation (s) |',
      '|---|---|---|---|',
      *[f'| {name} | {seconds:.3f} | {seconds / reference:.2f} | '
        f'{evaluation:.1f} |' for name, seconds, evaluation in rows], ''])
  pathlib.Path(_OUTPUT.value).write_text(text)
  print(text)


def _merged(base: Dict, *more: Dict) -> Dict:
  """`base` with each of `more` merged in, nested dicts key by key (Model
  Garden's ParamsDict override)."""
  merged = params_dict.ParamsDict(base)
  for extra in more:
    merged.override(extra, is_strict=False)
  return merged.as_dict()


if __name__ == '__main__':
  app.run(main)
