r"""The paper's Table 1 (and Table 3, Figures 1 and 4) in miniature, on a CPU.

  python -m backbone_reuse.shapes.grid [--output_dir=runs/shapes_grid] \
      [--report_dir=experiments/shapes/report]
  python -m backbone_reuse.shapes.grid --curve   # learning curves
  python -m backbone_reuse.shapes.grid --curve --detector_steps=3000 \
      [--detector_learning_rate=0.16]   # another schedule's curves
  python -m backbone_reuse.shapes.grid --report_only   # from the records
  python -m backbone_reuse.shapes.grid --quick   # tiny; what the tests run

The grid (one Shapes world; the same schedule in every cell but the
schedule-length study's):
  capacity  fpn | nasfpn | nasfpn_cascade    box-only Faster / Cascade R-CNN
                                             (configs/shapes/capacity/)
  strategy  scratch | finetune | freeze      configs/strategies/
            (+ adapters: the most capacity, large upstream; Table 7)
            (+ partial, k = 1 | 3 frozen block groups: FPN and Cascade
             R-CNN NAS-FPN, large upstream, seeds 0-2; an extension)
  upstream  small | large                    Shapes classification sets
  seed      as many as the claims need (GridScale: 8 for Cascade R-CNN
            NAS-FPN finetune | freeze on the large upstream, 5 for NAS-FPN
            and for the small-upstream and adapters Cascade cells, 3 for
            FPN, 2 elsewhere)
  schedule  the grid's, and 2x for Cascade R-CNN NAS-FPN finetune | freeze,
            large | small upstream, 3 seeds (the paper's observation 1)
A detector run with seed s starts from the upstream trained with seed s, so
freeze and fine-tune runs pair by seed. Every training is
`python -m backbone_reuse.train` (shapes/runs.py) on committed YAMLs plus a
per-run overrides.yaml.

`--curve` trains each capacity's finetune and freeze run (large upstream,
seed 0) with a checkpoint at every quarter of the schedule, each evaluated:
the learning curve the schedule is chosen from. Those runs are the grid's
seed-0 runs too (a run's identity ignores checkpointing).

Resuming: finished stages on disk are not redone (shapes/stages.py), and each
finished run's small record goes to REPORT_DIR/runs/NAME.json with its config
key (shapes/runs.py). A run whose committed record has the key the run would
have now is not trained again, on any machine; so committing REPORT_DIR/runs
as runs finish lets a fresh clone continue the grid.
"""
import dataclasses
import hashlib
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
import platform
import sys
import time
from typing import Dict, List, Mapping, Optional, Tuple

from absl import app
from absl import flags
from absl import logging
from official.core import task_factory
import tensorflow as tf
import tf_keras

from backbone_reuse import errors
from backbone_reuse import package_data
from backbone_reuse.analysis import parameters
from backbone_reuse.analysis import resources
from backbone_reuse.configs import strategies
from backbone_reuse.modeling import precision
from backbone_reuse.shapes import claims
from backbone_reuse.shapes import demo
from backbone_reuse.shapes import experiments
from backbone_reuse.shapes import records
from backbone_reuse.shapes import report
from backbone_reuse.shapes import runs
from backbone_reuse.shapes import stages
from backbone_reuse.shapes import world

CONFIGS = package_data.root() / package_data.CONFIGS
# The adapters cells' setting, chosen by the adapters study on its dev split.
ADAPTERS_CHOICE = CONFIGS / 'shapes' / 'adapters.yaml'
DETECTOR = 'shapes_fasterrcnn'
RECORDS = 'runs'  # REPORT_DIR/runs/NAME.json
DATA = 'data'  # The record of the world's generation (its seconds).
CURVE_POINTS = 4  # Evaluations of a --curve run: at each quarter.


@dataclasses.dataclass(frozen=True)
class Run:
  """One detector training of the grid."""
  capacity: str
  strategy: str
  upstream: Optional[str] = None
  seed: int = 0
  # Detector steps when not the scale's (the schedule-length study).
  steps: Optional[int] = None
  precision: str = 'float32'  # Or 'bfloat16' (runtime.mixed_precision_dtype).
  # task.frozen_stages of a 'partial' run (the stem and block groups 1..k
  # frozen); None for every other strategy.
  frozen_stages: Optional[int] = None

  def __post_init__(self):
    for field, value, accepted in (
        ('capacity', self.capacity, experiments.CAPACITIES),
        ('strategy', self.strategy, experiments.STRATEGIES)):
      if value not in accepted:
        raise ValueError(f'{field}={value!r}; accepted: {", ".join(accepted)}')
    if (self.strategy == 'scratch') != (self.upstream is None):
      raise ValueError(f'{self.strategy} with upstream={self.upstream!r}: '
                       'scratch takes no upstream, the others one of '
                       f'{", ".join(experiments.UPSTREAMS)}')
    if self.upstream not in (None, *experiments.UPSTREAMS):
      raise ValueError(f'upstream={self.upstream!r}; accepted: '
                       f'{", ".join(experiments.UPSTREAMS)}')
    if self.steps is not None and self.steps <= 0:
      raise ValueError(f'steps={self.steps}; accepted: a positive number')
    if self.precision not in _PRECISIONS:
      raise ValueError(f'precision={self.precision!r}; accepted: '
                       f'{", ".join(_PRECISIONS)}')
    if (self.strategy == strategies.PARTIAL) != (
        self.frozen_stages is not None):
      raise ValueError(
          f'{self.strategy} with frozen_stages={self.frozen_stages!r}: '
          'partial takes the number of frozen block groups, the other '
          'strategies none')

  @property
  def strategy_label(self) -> str:
    """The strategy as the grid's cells name it: 'partial3' for partial
    freezing with k = 3, else the strategy."""
    return claims.strategy_label(dataclasses.asdict(self))

  @property
  def name(self) -> str:
    # float32 runs keep the names (and records) they had before precision
    # was a choice; bfloat16 runs never share a name with them.
    parts = [self.capacity, self.strategy_label, self.upstream,
             f's{self.seed}',
             f'{self.steps}steps' if self.steps else None,
             _precision_suffix(self.precision)]
    return '_'.join(p for p in parts if p)

  def config_files(self, chosen_adapters: bool = True) -> Tuple[str, ...]:
    """The committed YAMLs of the run. An adapters cell adds the setting
    the adapters study chose on its dev split (ADAPTERS_CHOICE) unless
    `chosen_adapters` is False (the study's reference: the strategy's own
    defaults)."""
    files = (str(CONFIGS / 'shapes' / 'capacity' / f'{self.capacity}.yaml'),
             str(CONFIGS / 'strategies' / f'{self.strategy}.yaml'))
    if self.strategy == 'adapters' and chosen_adapters:
      files += (str(ADAPTERS_CHOICE),)
    return files


_PRECISIONS = ('float32', 'bfloat16')


def _precision_suffix(precision: str) -> Optional[str]:
  return None if precision == 'float32' else precision


def _seeds(*ranges) -> Tuple[int, ...]:
  return tuple(seed for r in ranges for seed in r)


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
  # Peak of the detectors' cosine schedule (warm-up from a tenth of it);
  # None: the experiment's own (shapes_fasterrcnn: 0.08).
  detector_learning_rate: Optional[float] = None
  capacities: Tuple[str, ...] = experiments.CAPACITIES
  # The seeds of each cell. Seed s of a detector starts from the upstream
  # trained with seed s, so cells pair by seed. The counts follow what each
  # claim needs (report.CLAIMS; seeds_needed in the report); seeds 0-2 are
  # the first grid's, later ones skip 2 where that upstream is not needed.
  large_seeds: Mapping[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=lambda: {'fpn': _seeds(range(3)),
                               'nasfpn': _seeds(range(5)),
                               'nasfpn_cascade': _seeds(range(8))})
  small_seeds: Mapping[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=lambda: {'fpn': (0, 1), 'nasfpn': (0, 1),
                               'nasfpn_cascade': _seeds((0, 1), range(3, 6))})
  scratch_seeds: Tuple[int, ...] = (0, 1)
  adapters_seeds: Tuple[int, ...] = _seeds((0, 1), range(3, 6))
  # The schedule-length study (the paper's observation 1, Table 2): Cascade
  # R-CNN NAS-FPN, finetune | freeze, large | small upstream, at
  # `long_steps` as well as at `detector_steps`. None: not run.
  long_steps: Optional[int] = 3000
  long_seeds: Tuple[int, ...] = _seeds(range(3, 6))
  # Partial freezing (an extension; mmdetection's frozen_stages): the stem
  # and block groups 1..k frozen, k in `partial_stages` (why these: claims.py),
  # on `partial_capacities` with the large upstream, seeds `partial_seeds`,
  # paired with the finetune and freeze cells of those seeds.
  partial_stages: Tuple[int, ...] = claims.PARTIAL_STAGES
  partial_capacities: Tuple[str, ...] = claims.PARTIAL_CAPACITIES
  partial_seeds: Tuple[int, ...] = _seeds(range(3))
  # What every run computes in (upstreams too): part of each run's name and
  # key, so float32 and bfloat16 records never mix.
  precision: str = 'float32'

  def grid(self) -> List[Run]:
    """Every run, in the order they train: by seed, so that the runs that
    start from one upstream checkpoint train one after another (on one
    machine, from the same checkpoint: a retrained upstream is not
    bit-identical); the adapters cells last (their setting is chosen on
    the dev split)."""
    found = []
    for capacity in self.capacities:
      for upstream, seeds in (('large', self.large_seeds),
                              ('small', self.small_seeds)):
        found += [Run(capacity, strategy, upstream, seed)
                  for seed in seeds.get(capacity, ())
                  for strategy in ('finetune', 'freeze')]
      found += [Run(capacity, 'scratch', None, seed)
                for seed in self.scratch_seeds]
    if 'nasfpn_cascade' in self.capacities:
      if self.long_steps and self.long_steps != self.detector_steps:
        found += [Run('nasfpn_cascade', strategy, upstream, seed,
                      self.long_steps)
                  for upstream in experiments.UPSTREAMS
                  for seed in self.long_seeds
                  for strategy in ('finetune', 'freeze')]
      found += [Run('nasfpn_cascade', 'adapters', 'large', seed)
                for seed in self.adapters_seeds]
    found += [Run(capacity, strategies.PARTIAL, 'large', seed,
                  frozen_stages=k)
              for capacity in self.partial_capacities
              if capacity in self.capacities
              for seed in self.partial_seeds for k in self.partial_stages]
    upstreams = {'large': 0, 'small': 1, None: 2}
    # The cells added after the first grid train after it, in the order
    # they were added.
    later = {'adapters': 1, strategies.PARTIAL: 2}
    found = [dataclasses.replace(r, precision=self.precision) for r in found]
    return sorted(found, key=lambda r: (later.get(r.strategy, 0), r.seed,
                                        upstreams[r.upstream],
                                        r.steps or 0))

  def curve(self) -> List[Run]:
    return [Run(capacity, strategy, 'large', 0, precision=self.precision)
            for capacity in self.capacities
            for strategy in ('finetune', 'freeze')]


SCALES = {
    'default': GridScale(upstream_small=1000, upstream_large=10000,
                         upstream_val=1000, detection_train=800,
                         detection_val=200, upstream_steps=1600,
                         detector_steps=1500, steps_per_loop=50),
    'quick': GridScale(upstream_small=64, upstream_large=160, upstream_val=40,
                       detection_train=40, detection_val=40,
                       upstream_steps=4, detector_steps=8, steps_per_loop=2,
                       capacities=('fpn',), large_seeds={'fpn': (0, 1)},
                       small_seeds={}, scratch_seeds=(), adapters_seeds=(),
                       long_steps=None, long_seeds=(), partial_seeds=()),
}


class ShapesGrid:
  """Runs the grid's stages under `output_dir`; records and report go to
  `report_dir`."""

  def __init__(self, output_dir: str, scale: GridScale, report_dir: str,
               command: str = '', precision_reason: str = ''):
    self.root = os.path.abspath(output_dir)
    self.scale = scale
    self.report_dir = os.path.abspath(report_dir)
    self.records = records.RecordStore(os.path.join(self.report_dir, RECORDS))
    self.command = command
    self.precision_reason = precision_reason
    # The demo's data stage writes the large upstream set and the detection
    # set (world seed 0); the grid adds the small upstream set beside them.
    self.demo = demo.Demo(self.root, demo.Scale(
        scale.upstream_large, scale.upstream_val, scale.detection_train,
        scale.detection_val, scale.upstream_steps, scale.detector_steps))
    self.data = self.demo.data
    # What the generated world depends on (not the schedules).
    self.data_identity = {
        'world_seed': 0, 'upstream_large': scale.upstream_large,
        'upstream_small': scale.upstream_small,
        'upstream_val': scale.upstream_val,
        'detection_train': scale.detection_train,
        'detection_val': scale.detection_val}
    self.retrained = set()  # Upstreams (re)trained by this invocation.

  def path(self, *parts) -> str:
    return os.path.join(self.root, *parts)

  def record_path(self, name: str) -> str:
    return self.records.path(name)

  def committed(self, name: str, key: str) -> Optional[Dict]:
    """The committed record of `name` if it was made with `key`."""
    return self.records.committed(name, key)

  def _commit(self, name: str, record: Dict) -> None:
    self.records.commit(name, record)

  # -- data -------------------------------------------------------------------
  def make_data(self) -> Dict:
    marker = self.demo.make_data()
    world.write_classification_tfrecords(
        os.path.join(self.data, 'upstream_small', 'train'),
        self.scale.upstream_small, seed=100)
    marker['records']['upstream_small/train'] = self.scale.upstream_small
    return marker

  # -- upstream ---------------------------------------------------------------
  def upstream_name(self, upstream: str, seed: int) -> str:
    suffix = _precision_suffix(self.scale.precision)
    return f'upstream_{upstream}_s{seed}' + (f'_{suffix}' if suffix else '')

  def upstream_training(self, upstream: str, seed: int) -> runs.Training:
    folder = 'upstream' if upstream == 'large' else 'upstream_small'
    return runs.Training('shapes_classification', (), {
        'task': {'train_data': {'input_path': os.path.join(
                     self.data, folder, 'train-*')},
                 'validation_data': {'input_path': os.path.join(
                     self.data, 'upstream', 'val-*')}},
        'trainer': {'train_steps': self.scale.upstream_steps,
                    'steps_per_loop': self.scale.steps_per_loop,
                    'summary_interval': self.scale.steps_per_loop},
        'runtime': {'mixed_precision_dtype': self.scale.precision}},
                         seed=seed)

  def upstream_key(self, upstream: str, seed: int) -> str:
    return runs.config_key(self.upstream_training(upstream, seed).params(),
                           self.data_identity)

  def train_upstream(self, upstream: str, seed: int) -> Dict:
    name = self.upstream_name(upstream, seed)
    training = self.upstream_training(upstream, seed)
    metrics = runs.train(training, self.path(name), 'train_and_eval', name)
    return {'train_steps': self.scale.upstream_steps, 'metrics': metrics}

  def upstream(self, upstream: str, seed: int, data_redone: bool) -> Dict:
    """Trains (or finds) an upstream checkpoint; commits its record."""
    name = self.upstream_name(upstream, seed)
    marker = stages.run_stage(
        self.path(name), name, f'pretrain on the {upstream} upstream set',
        lambda: self.train_upstream(upstream, seed),
        lambda m: stages.verify_checkpoint(self.path(name), m['train_steps']),
        resumable=True, force=data_redone and name not in self.retrained,
        identity=self.upstream_key(upstream, seed))
    if 'skipped' not in marker:
      self.retrained.add(name)
    if 'skipped' not in marker or not self.committed(
        name, self.upstream_key(upstream, seed)):
      self._commit(name, {
          'key': self.upstream_key(upstream, seed), 'upstream': upstream,
          'seed': seed, 'precision': self.scale.precision,
          'images': (self.scale.upstream_large if upstream == 'large'
                     else self.scale.upstream_small),
          'top1': marker['metrics'].get('accuracy'),
          'seconds': marker['seconds']})
    return marker

  # -- detector runs ----------------------------------------------------------
  def training(self, run: Run, curve: bool = False,
               chosen_adapters: bool = True) -> runs.Training:
    detection = os.path.join(self.data, 'detection')
    steps = run.steps or self.scale.detector_steps
    task = {'annotation_file': os.path.join(detection, 'val',
                                            'annotations.json'),
            'train_data': {'input_path': detection + '/train-*'},
            'validation_data': {'input_path': detection + '/val-*'}}
    if run.upstream:
      task['init_checkpoint'] = self.path(
          self.upstream_name(run.upstream, run.seed))
    if run.frozen_stages is not None:
      task['frozen_stages'] = run.frozen_stages
    # A curve run trains one loop per quarter: the trainer checkpoints at
    # the end of its first loop and then every `every` steps, so the
    # checkpoints fall on the quarters (with shorter loops they came late:
    # 450 / 850 / 1250 of 1500).
    every = steps // CURVE_POINTS if curve else steps
    loop = every if curve else min(self.scale.steps_per_loop, steps)
    trainer = {'train_steps': steps, 'steps_per_loop': loop,
               'summary_interval': loop, 'checkpoint_interval': every,
               'max_to_keep': CURVE_POINTS}
    rate = self.scale.detector_learning_rate
    if rate is not None:
      trainer['optimizer_config'] = {'learning_rate': {'cosine': {
          'initial_learning_rate': rate}}, 'warmup': {'linear': {
              'warmup_learning_rate': rate / 10}}}
    return runs.Training(DETECTOR, run.config_files(chosen_adapters),
                         {'task': task, 'trainer': trainer,
                          'runtime': {'mixed_precision_dtype': run.precision}},
                         seed=run.seed)

  def key(self, run: Run) -> str:
    upstream = (self.upstream_key(run.upstream, run.seed) if run.upstream
                else None)
    return runs.config_key(without_checkpointing(self.training(run).params()),
                           upstream, self.data_identity)

  def train_and_evaluate(self, run: Run, curve: bool) -> Dict:
    model_dir = self.path('runs', run.name)
    training = self.training(run, curve)
    runs.train(training, model_dir, 'train', run.name)
    results, _ = runs.evaluate(training, model_dir, self.scale.detection_val)
    params = training.params()
    points = []
    if curve:  # The earlier checkpoints; the last one is `results`.
      for checkpoint in tf.train.get_checkpoint_state(
          model_dir).all_model_checkpoint_paths[:-1]:
        at, _ = runs.evaluate(training, checkpoint, self.scale.detection_val)
        points.append({'step': int(checkpoint.rsplit('-', 1)[1]),
                       'box': headline(at['box'])})
      points.append({'step': params.trainer.train_steps,
                     'box': headline(results['box'])})
    params = training.params()
    return {
        'train_steps': params.trainer.train_steps,
        'record': {
            'run': dataclasses.asdict(run), 'name': run.name,
            'results': results, 'curve': points,
            # Which upstream checkpoint the run started from: same-seed
            # retrainings are not bit-identical, so pairs that must share
            # one can be checked.
            'upstream_checkpoint': (
                checkpoint_digest(self.path(self.upstream_name(
                    run.upstream, run.seed))) if run.upstream else None),
            'parameters': runs.load_json(model_dir, parameters.FILENAME),
            'resources': runs.load_json(model_dir, resources.FILENAME),
            'flops_per_step': self.flops(run),
            'batch_size': params.task.train_data.global_batch_size}}

  def flops(self, run: Run) -> Dict[str, int]:
    """Training FLOPs per step. They depend on the model, what it trains
    and the batch shape only, so each is counted once and cached under a
    key of those (a changed model config is counted anew)."""
    kind = 'trained' if run.strategy in ('scratch', 'finetune') else (
        run.strategy_label)
    params = self.training(run).params()
    key = runs.config_key(params.task.model, kind,
                          params.task.train_data.global_batch_size)
    cache = self.path('flops', f'{run.capacity}_{kind}_{key}.json')
    if os.path.isfile(cache):
      with open(cache) as f:
        return json.load(f)
    task = task_factory.get_task(params.task)
    model = task.build_model()
    count = resources.train_step_flops(task, model, params)
    tf_keras.backend.clear_session()
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache, 'w') as f:
      json.dump(count, f)
    return count

  def detector(self, run: Run, label: str, curve: bool,
               data_redone: bool) -> Dict:
    """One run's record: committed, or trained now (and committed)."""
    key = self.key(run)
    record = self.committed(run.name, key)
    if record and (record['curve'] or not curve):
      print(f'[{label}] committed result reused ({self.record_path(run.name)}'
            ').', flush=True)
      return record
    if run.upstream:
      self.upstream(run.upstream, run.seed, data_redone)
    model_dir = self.path('runs', run.name)
    # A run on disk is stale if its data or its upstream was made anew.
    stale = data_redone or (run.upstream and self.upstream_name(
        run.upstream, run.seed) in self.retrained)
    marker = stages.run_stage(
        model_dir, label, 'train and evaluate',
        lambda: self.train_and_evaluate(run, curve),
        lambda m: stages.verify_checkpoint(model_dir, m['train_steps']),
        # A curve run evaluates more than a grid run: a grid run on disk is
        # not a curve run (a curve run's committed record serves the grid).
        resumable=True, force=bool(stale),
        identity=f'{key} curve' if curve else key)
    record = dict(marker['record'], key=key, seconds=marker['seconds'])
    self._commit(run.name, record)
    return record

  # -- driver -----------------------------------------------------------------
  def run(self, curve: bool = False, report_only: bool = False) -> Dict:
    """Runs the grid (or its learning-curve runs); writes the report.

    With `report_only`, trains nothing: the report is written from the
    committed records that have the key their run would have now (the
    others are named and left out).
    """
    start = time.time()
    os.makedirs(self.root, exist_ok=True)
    todo = self.scale.curve() if curve else self.scale.grid()
    keys = {run.name: self.key(run) for run in todo}
    missing = [r for r in todo if not self.committed(r.name, keys[r.name])
               or (curve and not self.committed(r.name, keys[r.name])['curve'])]
    if report_only:
      if missing:
        print(f'{len(missing)} of {len(todo)} runs have no committed record '
              f'and are left out: {", ".join(r.name for r in missing)}',
              flush=True)
      todo = [r for r in todo if r not in missing]
      missing = []
    data_redone = False
    data_record = self.committed(DATA, self.data_identity)
    if missing or not data_record:
      data = stages.run_stage(self.data, 'data', 'generate the Shapes world',
                              self.make_data, self.demo.verify_data)
      data_redone = 'skipped' not in data
      if data_redone or not data_record:
        data_record = {'key': self.data_identity, 'seconds': data['seconds']}
        self._commit(DATA, data_record)
    records = [self.detector(run, f'{index}/{len(todo)} {run.name}', curve,
                             data_redone)
               for index, run in enumerate(todo, 1)]
    upstreams = sorted({(r.upstream, r.seed) for r in todo if r.upstream})
    upstream_records = [self.committed(self.upstream_name(u, s),
                                       self.upstream_key(u, s))
                        for u, s in upstreams]
    context = {
        'command': self.command,
        'scale': dataclasses.asdict(self.scale),
        'machine': _machine(),
        'precision': precision.describe(self.scale.precision,
                                        self.precision_reason),
        'this_invocation_seconds': time.time() - start,
        'data_seconds': data_record['seconds'],
        'upstream': [r for r in upstream_records if r],
        'annotations': _training_annotations(self.path(
            'data', 'detection', 'train', 'annotations.json'),
                                             self.report_dir),
    }
    if curve:
      report.write_curve(records, context, self.report_dir)
    else:
      report.write_report(records, context, self.report_dir)
    print(f'Report written to {self.report_dir}', flush=True)
    return {'context': context, 'records': records}


def checkpoint_digest(directory: str) -> str:
  """A digest of the latest checkpoint's index (it holds a CRC of every
  saved tensor, so it changes with any value)."""
  prefix = tf.train.latest_checkpoint(directory)
  with open(prefix + '.index', 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


def headline(metrics: Dict) -> Dict:
  return {k: metrics[k] for k in ('AP', 'AP50', 'APr', 'APc', 'APf')}


def without_checkpointing(params):
  """The config without what only changes when checkpoints and logs are
  written, not what is computed."""
  params = params.replace()
  for field in ('checkpoint_interval', 'max_to_keep', 'steps_per_loop',
                'summary_interval'):
    setattr(params.trainer, field, 0)
  return params


def _training_annotations(path: str, report_dir: str) -> Dict:
  """Per-class training instances and frequency groups (Figure 4), kept
  beside the records so that a report can be rewritten without the data."""
  saved = os.path.join(report_dir, RECORDS, 'categories.json')
  if os.path.isfile(path):
    with open(path) as f:
      categories = json.load(f)['categories']
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    with open(saved, 'w') as f:
      json.dump(categories, f, indent=1)
  with open(saved) as f:
    categories = json.load(f)
  return {c['name']: {'instances': c['instance_count'],
                      'frequency': c['frequency']} for c in categories}


def _machine() -> Dict:
  memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return {'cpus': os.cpu_count(), 'memory_gb': round(memory / 2**30, 1),
          'processor': platform.processor() or platform.machine(),
          'python': platform.python_version(),
          'tensorflow': tf.__version__}


def main(_):
  logging.set_verbosity(logging.WARNING)  # Each run's details: its train.log.
  scale = SCALES['quick' if FLAGS.quick else 'default']
  changes = {'detector_learning_rate': FLAGS.detector_learning_rate,
             'detector_steps': FLAGS.detector_steps}
  for name, value in changes.items():
    if value is not None and value <= 0:
      errors.report_bad_input(errors.BadInput(
          f'--{name}={value}; accepted: a positive number'))
  try:
    dtype, reason = precision.choose(FLAGS.precision)
  except ValueError as error:
    errors.report_bad_input(error)
  print(f'Precision: {dtype} ({reason}).', flush=True)
  scale = dataclasses.replace(
      scale, precision=dtype,
      **{k: v for k, v in changes.items() if v is not None})
  report_dir = FLAGS.report_dir or os.path.join(FLAGS.output_dir, 'report')
  command = 'python -m backbone_reuse.shapes.grid ' + ' '.join(sys.argv[1:])
  ShapesGrid(FLAGS.output_dir, scale, report_dir, command, reason).run(
      FLAGS.curve, FLAGS.report_only)


if __name__ == '__main__':
  flags.DEFINE_string('output_dir', 'runs/shapes_grid',
                      'Data, checkpoints and logs of every run go here.')
  flags.DEFINE_string('report_dir', None,
                      'Records (runs/NAME.json) and the report (default: '
                      'OUTPUT_DIR/report).')
  flags.DEFINE_bool('quick', False, 'A tiny grid (what the tests run).')
  flags.DEFINE_bool('curve', False,
                    'Only the learning-curve runs: each capacity, finetune '
                    'and freeze, evaluated at every quarter of the schedule.')
  flags.DEFINE_string(
      'precision', 'float32',
      "auto | float32 | bfloat16: what every run computes in (part of each "
      "run's name and key). auto: bfloat16 where the CPU reports AMX-BF16 "
      'or AVX512-BF16 (or a GPU supports it). Default float32: the committed '
      'grid was measured in float32 and resumes only in it.')
  flags.DEFINE_bool('report_only', False,
                    'Train nothing: write the report from the committed '
                    'records (those missing are named and left out).')
  flags.DEFINE_float('detector_learning_rate', None,
                     'Peak learning rate of every detector run (part of each '
                     "run's identity). Unset: the scale's.")
  flags.DEFINE_integer('detector_steps', None,
                       'Training steps of every detector run (the schedule '
                       "follows; part of each run's identity). Unset: the "
                       "scale's.")
  FLAGS = flags.FLAGS
  app.run(main)
