"""The Shapes grid's runs: the world, the upstreams, every detector run of
design.py, their committed records and the report (its command line:
shapes/grid.py).

A detector run with seed s starts from the upstream trained with seed s, so
freeze and fine-tune runs pair by seed. Every training is
`python -m backbone_reuse.train` (shapes/runs.py) on committed YAMLs plus a
per-run overrides.yaml. Finished stages on disk are not redone
(shapes/stages.py), and each finished run's small record goes to
REPORT_DIR/runs/NAME.json with its config key: a run whose committed record
has the key the run would have now is not trained again, on any machine.
"""
import dataclasses
import json
import os
import platform
import time
from typing import Dict, List, Optional, Tuple

from official.core import task_factory
import tensorflow as tf
import tf_keras

from backbone_reuse.analysis import backbone_drift
from backbone_reuse.analysis import intervals
from backbone_reuse.analysis import parameters
from backbone_reuse.analysis import resources
from backbone_reuse.configs import strategies
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.modeling import precision
from backbone_reuse.shapes import claims
from backbone_reuse.shapes import demo
from backbone_reuse.shapes import design
from backbone_reuse.shapes import dev_split
from backbone_reuse.shapes import experiments
from backbone_reuse.shapes import long_schedule
from backbone_reuse.shapes import records
from backbone_reuse.shapes import report
from backbone_reuse.shapes import runs
from backbone_reuse.shapes import stages
from backbone_reuse.shapes import world

DETECTOR = 'shapes_fasterrcnn'
RECORDS = 'runs'  # REPORT_DIR/runs/NAME.json
DATA = 'data'  # The record of the world's generation (its seconds).
CURVE_POINTS = 4  # Evaluations of a --curve run: at each quarter.
WORLD_SEED = 0  # The demo's data stage draws the world with it.
RESUME_EVERY = 1000  # Steps between the checkpoints a run resumes from.
# The schedule pilot's records (REPORT_DIR/long_schedule/runs/NAME.json) and
# run folders (OUTPUT_DIR/long_schedule/NAME), apart from the grid's: its
# runs retrain some committed grid runs (to score them on dev) from an
# upstream retrained on this machine, and must not replace their records.
PILOT = 'long_schedule'
# Runs whose backbone's drift from the upstream is measured (an adapters
# backbone has more variables than its upstream's).
DRIFT_MEASURED = (strategies.FINETUNE, strategies.PARTIAL, strategies.FREEZE)


class ShapesGrid:
  """Runs the grid's stages under `output_dir`; records and report go to
  `report_dir`."""

  def __init__(self, output_dir: str, scale: design.GridScale, report_dir: str,
               command: str = '', precision_reason: str = ''):
    self.root = os.path.abspath(output_dir)
    self.scale = scale
    self.report_dir = os.path.abspath(report_dir)
    self.records = records.RecordStore(os.path.join(self.report_dir, RECORDS))
    self.pilot_store = records.RecordStore(
        os.path.join(self.report_dir, PILOT, RECORDS))
    self.command = command
    self.precision_reason = precision_reason
    # The demo's data stage writes the large upstream set and the detection
    # set (world seed 0); the grid adds the small upstream set beside them.
    self.demo = demo.Demo(self.root, demo.Scale(
        scale.upstream_large, scale.upstream_val, scale.detection_train,
        scale.detection_val, scale.upstream_steps, scale.detector_steps))
    self.data = self.demo.data
    self.dev = dev_split.DevSplit(
        self.path('data', 'detection_dev'), scale.dev_images, WORLD_SEED,
        self.path('data', 'detection', 'train', 'annotations.json'))
    # What the generated world depends on (not the schedules).
    self.data_identity = {
        'world_seed': WORLD_SEED, 'upstream_large': scale.upstream_large,
        'upstream_small': scale.upstream_small,
        'upstream_val': scale.upstream_val,
        'detection_train': scale.detection_train,
        'detection_val': scale.detection_val}
    self.retrained = set()  # Upstreams (re)trained by this invocation.
    # Whether the world was made anew by this invocation (None: not yet
    # looked at).
    self._data_redone = None

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
    suffix = design.precision_suffix(self.scale.precision)
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

  def upstream(self, upstream: str, seed: int, data_redone: bool,
               store: Optional[records.RecordStore] = None) -> Dict:
    """Trains (or finds) an upstream checkpoint; commits its record to
    `store` (default: the grid's)."""
    store = store or self.records
    name = self.upstream_name(upstream, seed)
    marker = stages.run_stage(
        self.path(name), name, f'pretrain on the {upstream} upstream set',
        lambda: self.train_upstream(upstream, seed),
        lambda m: stages.verify_checkpoint(self.path(name), m['train_steps']),
        resumable=True, force=data_redone and name not in self.retrained,
        identity=self.upstream_key(upstream, seed))
    if 'skipped' not in marker:
      self.retrained.add(name)
    if 'skipped' not in marker or not store.committed(
        name, self.upstream_key(upstream, seed)):
      store.commit(name, {
          'key': self.upstream_key(upstream, seed), 'upstream': upstream,
          'seed': seed, 'precision': self.scale.precision,
          'images': (self.scale.upstream_large if upstream == 'large'
                     else self.scale.upstream_small),
          'top1': marker['metrics'].get('accuracy'),
          'seconds': marker['seconds']})
    return marker

  # -- detector runs ----------------------------------------------------------
  def training(self, run: design.Run, curve: bool = False,
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
    # Other runs checkpoint every RESUME_EVERY steps, so a long run stopped
    # with its machine resumes from its last checkpoint (checkpointing is
    # not part of a run's key).
    every = steps // CURVE_POINTS if curve else min(steps, RESUME_EVERY)
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

  def key(self, run: design.Run) -> str:
    upstream = (self.upstream_key(run.upstream, run.seed) if run.upstream
                else None)
    return runs.config_key(runs.without_checkpointing(self.training(run).params()),
                           upstream, self.data_identity)

  def train_and_evaluate(self, run: design.Run, curve: bool,
                         model_dir: str) -> Dict:
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
                       'box': runs.headline(at['box'])})
      points.append({'step': params.trainer.train_steps,
                     'box': runs.headline(results['box'])})
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
                runs.checkpoint_digest(self.path(self.upstream_name(
                    run.upstream, run.seed))) if run.upstream else None),
            'parameters': runs.load_json(model_dir, parameters.FILENAME),
            'resources': runs.load_json(model_dir, resources.FILENAME),
            'flops_per_step': self.flops(run),
            'batch_size': params.task.train_data.global_batch_size}}

  def flops(self, run: design.Run) -> Dict[str, int]:
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
    records.write_json(cache, count)
    return count

  def score_on_dev(self, run: design.Run, model_dir: str) -> Dict:
    """Box metrics of the detector in `model_dir` on the dev split."""
    results, _ = runs.evaluate(self.dev.scored_on(self.training(run)),
                               model_dir, self.dev.images)
    return {'identity': self.dev.identity, 'box': runs.headline(results['box'])}

  def backbone_drift(self, run: design.Run, model_dir: str) -> Dict:
    """How far the detector's backbone moved from its upstream checkpoint
    (per block group) and the upstream val top-1 under the upstream's own
    classifier, before and after its backbone is replaced by the
    detector's."""
    upstream_dir = self.path(self.upstream_name(run.upstream, run.seed))
    upstream = self.upstream_training(run.upstream, run.seed).params()
    task = task_factory.get_task(upstream.task)
    classifier = task.build_model()
    backbone_checkpoint.restore_detector(classifier, upstream_dir,
                                         flag='upstream checkpoint')
    detector_params = self.training(run).params()
    detector = task_factory.get_task(detector_params.task).build_model()
    backbone_checkpoint.restore_detector(detector, model_dir,
                                         flag='model dir')
    distance = backbone_drift.relative_distances(detector.backbone,
                                                 classifier.backbone)
    batches = task.build_inputs(upstream.task.validation_data)
    before = backbone_drift.top1(classifier, batches)
    backbone_drift.copy_backbone(detector.backbone, classifier.backbone)
    after = backbone_drift.top1(classifier, batches)
    tf_keras.backend.clear_session()
    return {'distance': distance, 'upstream_top1': after,
            'upstream_top1_of_upstream': before}

  def scored_on_dev(self, record: Dict) -> bool:
    """Whether `record` carries a score on this dev split (not another)."""
    return record.get(dev_split.NAME, {}).get('identity') == self.dev.identity

  def detector(self, run: design.Run, label: str, curve: bool,
               data_redone: bool, pilot: bool = False) -> Dict:
    """One run's record: committed, or trained now (and committed). A pilot
    run is kept apart (PILOT) and scored on the dev split too."""
    store, folder = ((self.pilot_store, PILOT) if pilot
                     else (self.records, 'runs'))
    key = self.key(run)
    record = store.committed(run.name, key)
    if record and (record['curve'] or not curve) and (
        not pilot or self.scored_on_dev(record)):
      print(f'[{label}] committed result reused ({store.path(run.name)}).',
            flush=True)
      return record
    if run.upstream:
      self.upstream(run.upstream, run.seed, data_redone,
                    self.pilot_store if pilot else None)
    model_dir = self.path(folder, run.name)
    # A run on disk is stale if its data or its upstream was made anew.
    stale = data_redone or (run.upstream and self.upstream_name(
        run.upstream, run.seed) in self.retrained)
    marker = stages.run_stage(
        model_dir, label, 'train and evaluate',
        lambda: self.train_and_evaluate(run, curve, model_dir),
        lambda m: stages.verify_checkpoint(model_dir, m['train_steps']),
        # A curve run evaluates more than a grid run: a grid run on disk is
        # not a curve run (a curve run's committed record serves the grid).
        resumable=True, force=bool(stale),
        identity=f'{key} curve' if curve else key)
    record = dict(marker['record'], key=key, seconds=marker['seconds'])
    if pilot:
      record[dev_split.NAME] = self.score_on_dev(run, model_dir)
    if run.strategy in DRIFT_MEASURED:
      record['backbone_drift'] = self.backbone_drift(run, model_dir)
    store.commit(run.name, record)
    return record

  # -- driver -----------------------------------------------------------------
  def data_stage(self, needed: bool) -> Tuple[bool, Dict]:
    """Generates the world if runs need it (or it has no record).

    Returns:
      (whether it was made anew, so runs on disk are stale; its record).
    """
    data_record = self.committed(DATA, self.data_identity)
    if not needed and data_record:
      return False, data_record
    data = stages.run_stage(self.data, 'data', 'generate the Shapes world',
                            self.make_data, self.demo.verify_data)
    data_redone = 'skipped' not in data
    if not data_record:  # The world is the same wherever it is drawn.
      data_record = {'key': self.data_identity, 'seconds': data['seconds']}
      self._commit(DATA, data_record)
    return data_redone, data_record

  def run_pilot(self) -> List[Dict]:
    """Trains the schedule pilot's runs (design.GridScale.pilot) that have
    no committed dev-scored record, rewriting long_schedule.md as each
    lands; returns the pilot's records."""
    todo = self.scale.pilot()
    if len(self.pilot_records()) < len(todo):
      data_redone, _ = self.data_stage(True)
      self.dev.ensure()
      for index, run in enumerate(todo, 1):
        self.detector(run, f'{index}/{len(todo)} {run.name}', False,
                      data_redone, pilot=True)
        self.write_long_schedule()
    return self.write_long_schedule()

  def write_long_schedule(self) -> List[Dict]:
    pilot = self.pilot_records()
    choice = self.long_schedule(pilot)
    longer = self.long_records(choice['L'] or max(self.scale.pilot_steps))
    headline = claims.at_steps(longer, choice['L']) if choice['L'] else []
    points = long_schedule.val_ap_by_steps(
        self.grid_pairs() + longer, self.scale.pilot_capacity,
        self.scale.detector_steps)
    report.write_long_schedule(choice, longer, self.report_dir, headline,
                               points, self.scale.pilot_capacity)
    return pilot

  def grid_pairs(self) -> List[Dict]:
    """The grid's committed freeze and finetune records of the pilot's
    capacity with the large upstream, at every schedule the grid runs."""
    found = [self.committed(run.name, self.key(run))
             for run in self.scale.grid()
             if run.capacity == self.scale.pilot_capacity
             and run.upstream == 'large' and run.strategy in experiments.PAIR
             and run.frozen_stages is None]
    return [r for r in found if r]

  def long_records(self, steps: int) -> List[Dict]:
    """The committed records of the pilot's store scored on this dev split:
    the pilot's runs and the headline's at `steps`."""
    found = [self.pilot_store.committed(run.name, self.key(run))
             for run in self.scale.pilot() + self.scale.headline(
                 steps, self.headline_seeds())
             + self.scale.after_headline(steps)]
    return list({r['name']: r for r in found
                 if r and self.scored_on_dev(r)}.values())

  def headline_seeds(self) -> List[int]:
    """Every seed the headline may use, in order."""
    return list(dict.fromkeys(self.scale.headline_seeds
                              + self.scale.headline_more_seeds))

  def run_headline(self) -> Optional[Dict]:
    """Trains the headline's runs at L (design.GridScale.headline): its
    seeds, then one more seed at a time while the headline claim is
    undecided and needs more seeds than it has; then the capacity and
    upstream-size claims' runs at L (design.GridScale.after_headline).
    Records go beside the pilot's (scored on dev too); long_schedule.md is
    rewritten as each lands. Returns the headline claim at L (None without
    a common seed)."""
    choice = self.long_schedule(self.pilot_records())
    if choice['L'] is None:
      raise ValueError(
          'the long schedule L is not chosen yet: run the pilot first '
          f'(--pilot). {long_schedule.describe(choice)}')
    seeds = list(self.scale.headline_seeds)
    more = [s for s in self.headline_seeds() if s not in seeds]
    self._data_redone = None
    while True:
      self.train_at_long(self.scale.headline(choice['L'], seeds))
      headline = self.headline_claim(choice['L'])
      needed = headline and headline['seeds_needed']
      if (not more or headline is None
          or headline['verdict'] != intervals.INCONCLUSIVE
          or needed is None or needed <= len(headline['seeds'])):
        break
      seeds.append(more.pop(0))
    self.train_at_long(self.scale.after_headline(choice['L']))
    return headline

  def train_at_long(self, todo: List[design.Run]) -> None:
    """Trains (or finds) `todo`'s records in the pilot's store, making the
    data and the dev split first if one is missing."""
    for index, run in enumerate(todo, 1):
      if self._data_redone is None and not self.has_long_record(run):
        self._data_redone, _ = self.data_stage(True)
        self.dev.ensure()
      self.detector(run, f'{index}/{len(todo)} {run.name}', False,
                    bool(self._data_redone), pilot=True)
      self.write_long_schedule()

  def has_long_record(self, run: design.Run) -> bool:
    record = self.pilot_store.committed(run.name, self.key(run))
    return bool(record) and self.scored_on_dev(record)

  def headline_claim(self, steps: int) -> Optional[Dict]:
    """The headline claim (claims.CLAIMS[0]) judged at `steps`."""
    found = [c for c in claims.at_steps(self.long_records(steps), steps)
             if c['claim'] == claims.CLAIMS[0]['claim']]
    return found[0] if found else None

  def pilot_records(self) -> List[Dict]:
    """The pilot's committed records scored on this dev split."""
    found = [self.pilot_store.committed(run.name, self.key(run))
             for run in self.scale.pilot()]
    return [r for r in found if r and self.scored_on_dev(r)]

  def long_schedule(self, pilot: List[Dict]) -> Dict:
    """The long schedule L the pilot's records choose (long_schedule.py)."""
    return long_schedule.choose(pilot, self.scale.pilot_capacity,
                                self.scale.pilot_steps, self.scale.pilot_seeds)

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
    data_redone, data_record = self.data_stage(bool(missing))
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
      pilot = self.pilot_records()
      context['long_schedule'] = self.long_schedule(pilot)
      steps = context['long_schedule']['L']
      context['claims_at_long'] = (
          claims.at_steps(self.long_records(steps), steps) if steps else [])
      report.write_report(records, context, self.report_dir)
      self.write_long_schedule()
    print(f'Report written to {self.report_dir}', flush=True)
    return {'context': context, 'records': records}


def _training_annotations(path: str, report_dir: str) -> Dict:
  """Per-class training instances and frequency groups (Figure 4), kept
  beside the records so that a report can be rewritten without the data."""
  saved = os.path.join(report_dir, RECORDS, 'categories.json')
  if os.path.isfile(path):
    with open(path) as f:
      categories = json.load(f)['categories']
    os.makedirs(os.path.dirname(saved), exist_ok=True)
    records.write_json(saved, categories, sort_keys=False)
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
