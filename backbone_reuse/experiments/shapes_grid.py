r"""The paper's Tables 1 and 3 and Figures 1 and 4, in miniature, on a CPU.

  python -m backbone_reuse.experiments.shapes_grid \
      --report_dir=experiments/shapes/report [--output_dir=runs/shapes_grid]
  python -m backbone_reuse.experiments.shapes_grid --quick   # 2 runs, tiny

The grid (same schedule and hyper-parameters in every cell; only the
strategy, the detector's capacity YAML and the upstream checkpoint differ):
  strategy  scratch | finetune | freeze          configs/strategies/
            (+ adapters, Table 7: one cell, most capacity, large upstream)
  capacity  fpn | nasfpn | nasfpn_cascade        configs/shapes/capacity/
  upstream  small | large (Shapes classification sets of different size;
            scratch uses none)                   configs/shapes/classification.yaml
Every run is `python -m backbone_reuse.train` on those committed YAMLs plus a
per-run overrides.yaml (data paths, checkpoint, steps), in its own process so
its peak memory is its own. Each run directory keeps the exact command,
log, params.yaml, parameters.json, resources.json and results.json.

Finished stages are not redone: rerunning the command resumes (see
backbone_reuse/stages.py); a run whose upstream was redone is redone too.
The report (Table 1 / Table 3 analogues, Figures 1 and 4, a README with the
reading) is written by backbone_reuse.experiments.shapes_report.
"""
import dataclasses
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
import pathlib
import platform
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
from official.core import task_factory
from pycocotools import coco
import tensorflow as tf
import tf_keras
import yaml

from backbone_reuse import demo
from backbone_reuse import stages
from backbone_reuse.analysis import parameters
from backbone_reuse.analysis import resources
from backbone_reuse.configs import resolve
from backbone_reuse.data import shapes_world
from backbone_reuse.evaluation import coco_metrics
from backbone_reuse.evaluation import predictions
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.experiments import shapes_report

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
CAPACITIES = ('fpn', 'nasfpn', 'nasfpn_cascade')
STRATEGIES = ('scratch', 'finetune', 'freeze', 'adapters')
UPSTREAMS = ('small', 'large')
RESULTS = 'results.json'


@dataclasses.dataclass(frozen=True)
class Run:
  """One cell of the grid (`repeat` > 0: an independent rerun of a cell)."""
  capacity: str
  strategy: str
  upstream: Optional[str] = None
  repeat: int = 0

  def __post_init__(self):
    if self.capacity not in CAPACITIES:
      raise ValueError(f'capacity={self.capacity!r}; accepted: '
                       f'{", ".join(CAPACITIES)}')
    if self.strategy not in STRATEGIES:
      raise ValueError(f'strategy={self.strategy!r}; accepted: '
                       f'{", ".join(STRATEGIES)}')
    if (self.strategy == 'scratch') != (self.upstream is None):
      raise ValueError(f'{self.strategy} with upstream={self.upstream!r}: '
                       'scratch takes no upstream, the others one of '
                       f'{", ".join(UPSTREAMS)}')
    if self.upstream is not None and self.upstream not in UPSTREAMS:
      raise ValueError(f'upstream={self.upstream!r}; accepted: '
                       f'{", ".join(UPSTREAMS)}')

  @property
  def name(self) -> str:
    parts = [self.capacity, self.strategy, self.upstream, f'r{self.repeat}']
    return '_'.join(p for p in parts if p)

  def config_files(self) -> List[str]:
    return [str(CONFIGS / 'shapes' / 'maskrcnn.yaml'),
            str(CONFIGS / 'shapes' / 'capacity' / f'{self.capacity}.yaml'),
            str(CONFIGS / 'strategies' / f'{self.strategy}.yaml')]


@dataclasses.dataclass(frozen=True)
class GridScale:
  """Data sizes, schedules and which runs."""
  upstream_small: int
  upstream_large: int
  upstream_val: int
  detection_train: int
  detection_val: int
  upstream_steps: int
  detector_steps: int
  steps_per_loop: int
  # Repeats of the key comparison (most capacity, large upstream, finetune vs
  # freeze) beyond the first run.
  extra_repeats: int = 1
  runs: Optional[Tuple[Run, ...]] = None  # None: the whole grid.

  def grid(self) -> List[Run]:
    if self.runs is not None:
      return list(self.runs)
    runs = []
    for capacity in CAPACITIES:
      runs.append(Run(capacity, 'scratch'))
      for upstream in UPSTREAMS:
        for strategy in ('finetune', 'freeze'):
          runs.append(Run(capacity, strategy, upstream))
    # Table 7 in miniature: residual adapters where the paper puts them.
    runs.append(Run('nasfpn_cascade', 'adapters', 'large'))
    for repeat in range(1, self.extra_repeats + 1):
      for strategy in ('finetune', 'freeze'):
        runs.append(Run('nasfpn_cascade', strategy, 'large', repeat))
    return runs


SCALES = {
    'default': GridScale(upstream_small=1000, upstream_large=10000,
                         upstream_val=1000, detection_train=800,
                         detection_val=200, upstream_steps=800,
                         detector_steps=400, steps_per_loop=50),
    'quick': GridScale(upstream_small=64, upstream_large=160, upstream_val=40,
                       detection_train=40, detection_val=40,
                       upstream_steps=4, detector_steps=6, steps_per_loop=2,
                       extra_repeats=0,
                       runs=(Run('fpn', 'finetune', 'large'),
                             Run('fpn', 'freeze', 'large'))),
}


class RunFailed(RuntimeError):
  pass


def train_in_subprocess(experiment: str, config_files: Sequence[str],
                        overrides: Dict, model_dir: str, mode: str) -> None:
  """`python -m backbone_reuse.train` on the YAMLs + MODEL_DIR/overrides.yaml.

  The command goes to MODEL_DIR/command.txt, its output to MODEL_DIR/train.log;
  Model Garden's step lines are echoed as progress.
  """
  overrides_path = os.path.join(model_dir, 'overrides.yaml')
  with open(overrides_path, 'w') as f:
    yaml.safe_dump(overrides, f)
  argv = [sys.executable, '-m', 'backbone_reuse.train',
          f'--experiment={experiment}',
          *[f'--config_file={p}' for p in [*config_files, overrides_path]],
          f'--mode={mode}', f'--model_dir={model_dir}']
  with open(os.path.join(model_dir, 'command.txt'), 'w') as f:
    f.write(' '.join(argv) + '\n')
  log_path = os.path.join(model_dir, 'train.log')
  tail = []
  with open(log_path, 'a') as log:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    for line in process.stdout:
      log.write(line)
      tail = (tail + [line])[-15:]
      if line.startswith('train | step:') and 'training until' not in line:
        print('    ' + line.split(' | output')[0].strip(), flush=True)
    returncode = process.wait()
  if returncode:
    raise RunFailed(f'training in {model_dir} exited with {returncode}; last '
                    f'lines of {log_path}:\n' + ''.join(tail))


class ShapesGrid:
  """Runs the grid's stages under `output_dir` and writes the report."""

  def __init__(self, output_dir: str, scale: GridScale, report_dir: str,
               command: str = ''):
    self.root = os.path.abspath(output_dir)
    self.scale = scale
    self.report_dir = os.path.abspath(report_dir)
    self.command = command
    # The demo's data stage writes the large upstream set and the detection
    # set; this grid adds the small upstream set beside them.
    self.demo = demo.Demo(self.root, demo.Scale(
        scale.upstream_large, scale.upstream_val, scale.detection_train,
        scale.detection_val, scale.upstream_steps, scale.detector_steps))
    self.data = self.demo.data
    self.seconds: Dict[str, float] = {}

  def path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  # -- data and upstream ------------------------------------------------------
  def make_data(self) -> Dict:
    marker = self.demo.make_data()
    shapes_world.write_classification_tfrecords(
        os.path.join(self.data, 'upstream_small', 'train'),
        self.scale.upstream_small, seed=100)
    marker['records']['upstream_small/train'] = self.scale.upstream_small
    return marker

  def upstream_dir(self, upstream: str) -> str:
    return self.path(f'upstream_{upstream}')

  def train_upstream(self, upstream: str) -> Dict:
    model_dir = self.upstream_dir(upstream)
    folder = 'upstream' if upstream == 'large' else 'upstream_small'
    overrides = {
        'task': {'train_data': {'input_path': os.path.join(
                     self.data, folder, 'train-*')},
                 'validation_data': {'input_path': os.path.join(
                     self.data, 'upstream', 'val-*')}},
        'trainer': {'train_steps': self.scale.upstream_steps,
                    'steps_per_loop': self.scale.steps_per_loop,
                    'summary_interval': self.scale.steps_per_loop}}
    train_in_subprocess('shapes_classification',
                        [str(CONFIGS / 'shapes' / 'classification.yaml')],
                        overrides, model_dir, 'train_and_eval')
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      metrics = json.load(f)['metrics']
    return {'train_steps': self.scale.upstream_steps, 'metrics': metrics,
            'images': (self.scale.upstream_large if upstream == 'large'
                       else self.scale.upstream_small)}

  # -- detector runs ----------------------------------------------------------
  def _annotations(self, split: str) -> str:
    return os.path.join(self.data, 'detection', split, 'annotations.json')

  def overrides(self, run: Run) -> Dict:
    detection = os.path.join(self.data, 'detection')
    task = {'annotation_file': self._annotations('val'),
            'train_data': {'input_path': detection + '/train-*'},
            'validation_data': {'input_path': detection + '/val-*'}}
    if run.upstream:
      task['init_checkpoint'] = tf.train.latest_checkpoint(
          self.upstream_dir(run.upstream))
    return {'task': task,
            'trainer': {'train_steps': self.scale.detector_steps,
                        'steps_per_loop': self.scale.steps_per_loop,
                        'summary_interval': self.scale.steps_per_loop,
                        'checkpoint_interval': self.scale.detector_steps}}

  def params(self, run: Run):
    return resolve.experiment_config('shapes_maskrcnn', run.config_files(),
                                     self.overrides(run))

  def train_and_evaluate(self, run: Run) -> Dict:
    model_dir = self.path('runs', run.name)
    train_in_subprocess('shapes_maskrcnn', run.config_files(),
                        self.overrides(run), model_dir, 'train')
    results = self.evaluate(run, model_dir)
    record = {
        'run': dataclasses.asdict(run),
        'name': run.name,
        'results': results,
        'parameters': _load(model_dir, parameters.FILENAME),
        'resources': _load(model_dir, resources.FILENAME),
        'flops_per_step': self.flops(run),
        'batch_size': self.params(run).task.train_data.global_batch_size,
    }
    with open(os.path.join(model_dir, RESULTS), 'w') as f:
      json.dump(record, f, indent=2)
    return {'train_steps': self.scale.detector_steps}

  def evaluate(self, run: Run, model_dir: str) -> Dict:
    params = self.params(run)
    task = task_factory.get_task(params.task)
    model = task.build_model()
    backbone_checkpoint.restore_detector(model, model_dir,
                                         flag='run model dir')
    detections = predictions.predict(task, model, params.task.validation_data,
                                     self.scale.detection_val)
    ground_truth = coco.COCO(self._annotations('val'))
    results = {'box': coco_metrics.evaluate(ground_truth, detections, 'bbox'),
               'mask': coco_metrics.evaluate(ground_truth, detections, 'segm')}
    tf_keras.backend.clear_session()
    return results

  def flops(self, run: Run) -> Dict[str, int]:
    """Training FLOPs per step. They depend on the model and the batch
    shape only, so each (capacity, strategy) is counted once and cached."""
    kind = 'trained' if run.strategy in ('scratch', 'finetune') else (
        run.strategy)
    cache = self.path('flops', f'{run.capacity}_{kind}.json')
    if os.path.isfile(cache):
      with open(cache) as f:
        return json.load(f)
    params = self.params(run)
    task = task_factory.get_task(params.task)
    model = task.build_model()
    count = resources.train_step_flops(task, model, params)
    tf_keras.backend.clear_session()
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache, 'w') as f:
      json.dump(count, f)
    return count

  def verify_run(self, run: Run, marker: Dict) -> Optional[str]:
    model_dir = self.path('runs', run.name)
    problem = stages.verify_checkpoint(model_dir, marker['train_steps'])
    if problem:
      return problem
    _load(model_dir, RESULTS)  # Raises on a missing or broken file.
    return None

  # -- driver -----------------------------------------------------------------
  def _stage(self, directory, name, title, work, verify, resumable, force):
    marker = stages.run_stage(directory, name, title, work, verify,
                              resumable=resumable, force=force)
    self.seconds[name] = marker['seconds']
    return marker

  def run(self) -> Dict:
    """Runs every stage, then writes and returns the report's inputs."""
    start = time.time()
    os.makedirs(self.root, exist_ok=True)
    data = self._stage(self.data, 'data', 'generate the Shapes world',
                       self.make_data, self.demo.verify_data,
                       resumable=False, force=False)
    redone = {'data': 'skipped' not in data}
    runs = self.scale.grid()
    upstream = {}
    for name in sorted({r.upstream for r in runs if r.upstream}):
      marker = self._stage(
          self.upstream_dir(name), f'upstream_{name}',
          f'pretrain on the {name} upstream set',
          lambda name=name: self.train_upstream(name),
          lambda m, name=name: stages.verify_checkpoint(
              self.upstream_dir(name), m['train_steps']),
          resumable=True, force=redone['data'])
      redone[name] = redone['data'] or 'skipped' not in marker
      upstream[name] = marker
    for index, run in enumerate(runs, 1):
      stale = redone['data'] or bool(run.upstream and redone[run.upstream])
      self._stage(self.path('runs', run.name),
                  f'{index}/{len(runs)} {run.name}',
                  'train and evaluate',
                  lambda run=run: self.train_and_evaluate(run),
                  lambda m, run=run: self.verify_run(run, m),
                  resumable=True, force=stale)
    records = [_load(self.path('runs', r.name), RESULTS) for r in runs]
    with open(self._annotations('train')) as f:
      categories = json.load(f)['categories']
    context = {
        'command': self.command,
        'scale': dataclasses.asdict(self.scale),
        'machine': _machine(),
        'stage_seconds': dict(self.seconds),
        'this_invocation_seconds': time.time() - start,
        'upstream': {k: {'images': v['images'],
                         'accuracy': v['metrics'].get('accuracy')}
                     for k, v in upstream.items()},
        'annotations': {c['name']: c['instance_count'] for c in categories},
        'frequency': {c['name']: c['frequency'] for c in categories},
    }
    with open(self.path('grid.json'), 'w') as f:
      json.dump({'context': context, 'records': records}, f, indent=2)
    shapes_report.write_report(records, context, self.report_dir)
    print(f'Report written to {self.report_dir}', flush=True)
    return {'context': context, 'records': records}


def _load(directory: str, filename: str) -> Dict:
  with open(os.path.join(directory, filename)) as f:
    return json.load(f)


def _machine() -> Dict:
  memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return {'cpus': os.cpu_count(), 'memory_gb': round(memory / 2**30, 1),
          'processor': platform.processor() or platform.machine(),
          'python': platform.python_version(),
          'tensorflow': tf.__version__}


def main(_):
  scale = SCALES['quick' if FLAGS.quick else 'default']
  if FLAGS.extra_repeats is not None:
    if FLAGS.extra_repeats < 0:
      raise SystemExit(f'--extra_repeats={FLAGS.extra_repeats}; accepted: '
                       '0 or more.')
    scale = dataclasses.replace(scale, extra_repeats=FLAGS.extra_repeats)
  report_dir = FLAGS.report_dir or os.path.join(FLAGS.output_dir, 'report')
  command = 'python -m backbone_reuse.experiments.shapes_grid ' + ' '.join(
      sys.argv[1:])
  ShapesGrid(FLAGS.output_dir, scale, report_dir, command).run()


if __name__ == '__main__':
  flags.DEFINE_string('output_dir', 'runs/shapes_grid',
                      'Data, upstream checkpoints and every run go here.')
  flags.DEFINE_string('report_dir', None,
                      'Where the report goes (default: OUTPUT_DIR/report).')
  flags.DEFINE_bool('quick', False,
                    'A 2-run slice on tiny data (what the tests run).')
  flags.DEFINE_integer('extra_repeats', None,
                       'Reruns of the key comparison (NAS-FPN + Cascade, '
                       'large upstream, finetune vs freeze); default 1.')
  FLAGS = flags.FLAGS
  app.run(main)
