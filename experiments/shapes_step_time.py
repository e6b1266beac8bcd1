r"""Where a Shapes detector's training step goes, by component (issue 12),
and what each backbone strategy costs (issue 39).

  python experiments/shapes_step_time.py [--work_dir=/tmp/shapes_step_time] \
      [--steps=60] [--output=experiments/shapes/report/step_time.md]
  python experiments/shapes_step_time.py --by_strategy --steps=80 \
      [--output=experiments/shapes/report/strategy_resources.md]

--by_strategy trains the grid's strategies instead (finetune, adapters as the
grid configures them, partial k = 1 and 3, freeze; Cascade R-CNN NAS-FPN and
FPN, the grid's YAMLs via shapes/design.py), one quiet process after another,
and reports each one's median step, TF allocator peak, peak RSS and the
1-minute load average when it finished: the resource comparisons the report
makes (step time, memory, Figure 1 right) measured without contention. Run
it with nothing else on the machine (pause other training); a row whose load
average exceeds the core count is marked.

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
import shutil
import time
from typing import Dict

from absl import app
from absl import flags
from official.modeling.hyperparams import params_dict
import tensorflow as tf

from backbone_reuse.analysis import resources
from backbone_reuse.shapes import demo
from backbone_reuse.shapes import design
from backbone_reuse.shapes import experiments
from backbone_reuse.shapes import grid_runner
from backbone_reuse.shapes import runs

REPO = pathlib.Path(__file__).resolve().parents[1]
_WORK_DIR = flags.DEFINE_string('work_dir', '/tmp/shapes_step_time',
                                'Data and runs.')
_STEPS = flags.DEFINE_integer('steps', 60, 'Training steps per variant.')
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Markdown table to write (default: '
    'experiments/shapes/report/step_time.md, or strategy_resources.md with '
    '--by_strategy).')
_BY_STRATEGY = flags.DEFINE_bool(
    'by_strategy', False, "The grid's strategies' resources instead of the "
    'components.')
_REPORT = REPO / 'experiments' / 'shapes' / 'report'

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


# (capacity, strategy, frozen_stages): the grid's runs, most trained first.
STRATEGY_VARIANTS = tuple(
    (capacity, strategy, stages)
    for capacity in ('nasfpn_cascade', 'fpn')
    for strategy, stages in (('finetune', None), ('adapters', None),
                             ('partial', 1), ('partial', 3),
                             ('freeze', None)))


def main(_):
  if _BY_STRATEGY.value:
    by_strategy()
  else:
    by_component()


def _world() -> demo.Demo:
  """A small Shapes world and its upstream, made once under --work_dir."""
  world = demo.Demo(_WORK_DIR.value, demo.Scale(
      upstream_train=400, upstream_val=40, detection_train=200,
      detection_val=40, upstream_steps=20, detector_steps=0))
  if not os.path.isdir(world.data):
    world.make_data()
  if not tf.train.latest_checkpoint(world.path('upstream')):
    runs.train(world.upstream_training(), world.path('upstream'), 'train',
               'upstream')
  return world


def _task_overrides(world: demo.Demo) -> Dict:
  detection = os.path.join(world.data, 'detection')
  return {'task': {'init_checkpoint': world.path('upstream'),
                   'annotation_file': os.path.join(detection, 'val',
                                                   'annotations.json'),
                   'train_data': {'input_path': detection + '/train-*'},
                   'validation_data': {'input_path': detection + '/val-*'}},
          'trainer': {'train_steps': _STEPS.value, 'steps_per_loop': 10,
                      'summary_interval': 10,
                      'checkpoint_interval': _STEPS.value}}


def by_strategy():
  world = _world()
  rows = []
  for capacity, strategy, stages in STRATEGY_VARIANTS:
    run = design.Run(capacity, strategy, 'large', 0, frozen_stages=stages)
    overrides = _task_overrides(world)
    if stages is not None:
      overrides['task']['frozen_stages'] = stages
    training = runs.Training(grid_runner.DETECTOR, run.config_files(),
                             overrides, seed=0)
    model_dir = os.path.join(_WORK_DIR.value, 'strategies', run.name)
    if os.path.isdir(model_dir):  # Measured anew, never resumed.
      shutil.rmtree(model_dir)
    runs.train(training, model_dir, 'train', run.name)
    found = runs.load_json(model_dir, resources.FILENAME)
    rows.append((capacity, run.strategy_label, found))
    print(f'{run.name}: {found["median_step_seconds"]:.3f} s/step, load '
          f'{found["cpu"]["load_average_1min"]}', flush=True)
  cores = os.cpu_count()
  lines = [
      '# What each backbone strategy costs to train, measured quietly', '',
      f'Produced by `python experiments/shapes_step_time.py --by_strategy '
      f'--steps={_STEPS.value}` on this {cores}-core CPU, one process after '
      'another, meant to run with nothing else on the machine (the load '
      f'column shows whether it did): {_STEPS.value} steps of batch 8 '
      "at 128 px per run, the grid's YAMLs (shapes/design.py), median "
      'seconds per step over the 10-step loops after the first, the TF '
      "allocator's peak and the process's peak RSS. Load: the 1-minute "
      'load average when the run finished (marked * above the core count: '
      'contended, not comparable).', '',
      '| detector | strategy | s / step | relative to finetune | TF peak '
      '(MB) | peak RSS (MB) | load |', '|---|---|---|---|---|---|---|']
  for capacity, label, found in rows:
    reference = [f for c, l, f in rows if c == capacity
                 and l == 'finetune'][0]['median_step_seconds']
    load = found['cpu']['load_average_1min']
    lines.append(
        f'| {experiments.CAPACITY_TITLES[capacity]} | {label} | '
        f'{found["median_step_seconds"]:.3f} | '
        f'{found["median_step_seconds"] / reference:.2f} | '
        f'{sum(found["tf_peak_memory_mb"].values()):.0f} | '
        f'{found["peak_rss_mb"]:.0f} | {load:.2f}'
        + ('*' if load > cores else '') + ' |')
  text = '\n'.join(lines + [''])
  pathlib.Path(_OUTPUT.value or _REPORT / 'strategy_resources.md').write_text(
      text)
  print(text)


def by_component():
  root = _WORK_DIR.value
  world = _world()
  rows = []
  for name, experiment, capacity, strategy, *extra in VARIANTS:
    overrides = _merged(_task_overrides(world), *extra)
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
  pathlib.Path(_OUTPUT.value or _REPORT / 'step_time.md').write_text(text)
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
