r"""The whole method on a CPU, in minutes: the Shapes-world demo (its
command line: backbone_reuse/demo.py).

Stages, each skipped when a verified result of an earlier run is there:
  data      generate the upstream classification set and the long-tailed
            detection set (COCO/LVIS JSON + JPEGs -> TFRecords);
  upstream  pretrain the backbone on upstream classification
            (experiment `shapes_classification`);
  detector  train a Faster R-CNN on the detection set with that backbone
            frozen (experiment `shapes_fasterrcnn`, backbone_strategy=freeze;
            box-only like the paper's Table 1: the mask branch is 70 % of
            a Mask R-CNN step, experiments/shapes/report/step_time.md);
  evaluate  COCO box metrics plus AP on rare/common/frequent classes,
            written to summary.md / summary.json, and predictions.png.
`--backbone=vit` runs the same stages with a 4-block plain ViT and ViTDet's
simple feature pyramid (experiments `shapes_vit_classification`,
`shapes_vit_fasterrcnn`) instead of the half-width ResNet-18.
Both trainings run in `--precision` (auto: bfloat16 where the CPU reports
AMX-BF16 or AVX512-BF16, float32 elsewhere; modeling/precision.py); the
summary says which ran and why. A stage whose artefacts fail verification
(truncated TFRecord, unreadable checkpoint, ...) is redone from scratch,
never reused.
"""
import dataclasses
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Keep the demo readable.

# pylint: disable=g-import-not-at-top
import resource
from typing import Callable, Dict, Optional

import tensorflow as tf

from backbone_reuse.analysis import visualize
from backbone_reuse.data import coco_conversion
from backbone_reuse.data import tfrecord_check
from backbone_reuse.modeling import precision
from backbone_reuse.shapes import runs
from backbone_reuse.shapes import stages
from backbone_reuse.shapes import world

# Training stages continue from their last checkpoint after an interruption;
# the others are cheap and start over.
_RESUMABLE = ('upstream', 'detector')


@dataclasses.dataclass(frozen=True)
class Scale:
  upstream_train: int
  upstream_val: int
  detection_train: int
  detection_val: int
  upstream_steps: int
  detector_steps: int


# --backbone: (upstream experiment, detector experiment).
BACKBONES = {
    'resnet': ('shapes_classification', 'shapes_fasterrcnn'),
    'vit': ('shapes_vit_classification', 'shapes_vit_fasterrcnn'),
}
BACKBONE_TITLES = {'resnet': 'ResNet-18 (half width) + FPN',
                   'vit': 'plain ViT (4 blocks) + simple feature pyramid'}

SCALES = {
    'small': Scale(3000, 400, 300, 80, 300, 400),
    'default': Scale(10000, 1000, 800, 200, 1600, 1500),
}


class Demo:
  """Runs the stages under `output_dir` at `scale`."""

  def __init__(self, output_dir: str, scale: Scale, seed: int = 0,
               precision: str = 'float32', precision_reason: str = '',
               backbone: str = 'resnet'):
    if backbone not in BACKBONES:
      raise ValueError(f'--backbone={backbone!r}; accepted: '
                       f'{", ".join(BACKBONES)}.')
    self.backbone = backbone
    self.root = os.path.abspath(output_dir)
    self.scale = scale
    self.seed = seed
    self.precision = precision
    self.precision_reason = precision_reason
    self.data = os.path.join(self.root, 'data')
    self.timings: Dict[str, float] = {}

  def path(self, *parts):
    return os.path.join(self.root, *parts)

  # -- data -----------------------------------------------------------------
  def make_data(self):
    s = self.scale
    counts = {}
    for split, n, seed in (('train', s.upstream_train, self.seed),
                           ('val', s.upstream_val, self.seed + 1)):
      world.write_classification_tfrecords(
          os.path.join(self.data, 'upstream', split), n, seed)
      counts[f'upstream/{split}'] = n
    weights = world.long_tail_weights(self.seed)
    frequencies = None
    jobs = []
    for split, n, seed in (('train', s.detection_train, self.seed + 2),
                           ('val', s.detection_val, self.seed + 3)):
      split_dir = os.path.join(self.data, 'detection', split)
      annotation_file, image_dir, frequencies = (
          world.write_detection_split(split_dir, n, seed, weights,
                                      frequencies))
      jobs.append({'annotation_file': annotation_file,
                   'image_dir': image_dir, 'output_prefix': split_dir,
                   'num_shards': 2 if split == 'train' else 1})
      counts[f'detection/{split}'] = n
    coco_conversion.convert_each(jobs)
    return {'records': counts, 'seed': self.seed}

  def verify_data(self, marker):
    if marker.get('seed') != self.seed:
      return (f"generated with seed {marker.get('seed')}, this run's is "
              f'{self.seed}')
    for name, expected in marker['records'].items():
      files = tf.io.gfile.glob(os.path.join(self.data, name) + '-*')
      if not files:
        return f'no TFRecords for {name}'
      shards = [tfrecord_check.read_shard(f) for f in files]
      corrupt = [s for s in shards if s.error is not None]
      if corrupt:
        return f'{name} is corrupt ({tfrecord_check.report_line(corrupt[0])})'
      found = sum(s.records for s in shards)
      if found != expected:
        return f'{name} has {found} records, expected {expected}'
    runs.quiet_coco(self._val_annotations())  # Raises on a broken JSON.
    return None

  def _val_annotations(self):
    return os.path.join(self.data, 'detection', 'val', 'annotations.json')

  # -- training ---------------------------------------------------------------
  def upstream_training(self) -> runs.Training:
    upstream = os.path.join(self.data, 'upstream')
    return runs.Training(BACKBONES[self.backbone][0], (), {
        'task': {'train_data': {'input_path': upstream + '/train-*'},
                 'validation_data': {'input_path': upstream + '/val-*'}},
        'trainer': {'train_steps': self.scale.upstream_steps},
        'runtime': {'mixed_precision_dtype': self.precision}},
                         seed=self.seed)

  def detector_training(self) -> runs.Training:
    detection = os.path.join(self.data, 'detection')
    checkpoint = tf.train.latest_checkpoint(self.path('upstream'))
    return runs.Training(BACKBONES[self.backbone][1], (), {
        'task': {'backbone_strategy': 'freeze',
                 'init_checkpoint': checkpoint,
                 'annotation_file': self._val_annotations(),
                 'train_data': {'input_path': detection + '/train-*'},
                 'validation_data': {'input_path': detection + '/val-*'}},
        'trainer': {'train_steps': self.scale.detector_steps},
        'runtime': {'mixed_precision_dtype': self.precision}},
                         seed=self.seed)

  def _train(self, training: runs.Training, stage: str, mode: str):
    metrics = runs.train(training, self.path(stage), mode, stage)
    return {'train_steps': training.params().trainer.train_steps,
            'metrics': metrics}

  def verify_checkpoint(self, stage: str, marker) -> str:
    return stages.verify_checkpoint(self.path(stage), marker['train_steps'])

  # -- evaluation -------------------------------------------------------------
  def evaluate(self):
    results, detections = runs.evaluate(self.detector_training(),
                                        self.path('detector'),
                                        self.scale.detection_val)
    with open(self.path('evaluate', 'detections.json'), 'w') as f:
      json.dump(detections, f)
    ground_truth = runs.quiet_coco(self._val_annotations())
    images = ground_truth.loadImgs(sorted(ground_truth.getImgIds())[:4])
    names = {c['id']: c['name'] for c in ground_truth.loadCats(
        ground_truth.getCatIds())}
    visualize.draw_predictions(
        os.path.join(self.data, 'detection', 'val', 'images'), images,
        detections, names, self.path('evaluate', 'predictions.png'))
    return {'results': results}

  def verify_evaluation(self, marker):
    del marker
    for name in ('predictions.png', 'detections.json'):
      if not os.path.isfile(self.path('evaluate', name)):
        return f'{name} is missing'
    return None

  # -- driver -----------------------------------------------------------------
  def stages(self):
    return (
        ('data', 'generate the Shapes world', self.make_data,
         self.verify_data),
        ('upstream', 'pretrain the backbone on upstream classification',
         lambda: self._train(self.upstream_training(), 'upstream',
                             'train_and_eval'),
         lambda m: self.verify_checkpoint('upstream', m)),
        ('detector', 'train Faster R-CNN with the backbone frozen',
         lambda: self._train(self.detector_training(), 'detector',
                             'train'),
         lambda m: self.verify_checkpoint('detector', m)),
        ('evaluate', 'evaluate on val', self.evaluate,
         self.verify_evaluation),
    )

  def identity(self, name: str) -> Optional[str]:
    """What a training stage computes: the key of its resolved config and
    of what it reads (the world's sizes and seed; the detector, the
    upstream's key). A stage finished under another scale or seed is then
    redone, not reused. Called when the stage starts, after the stages
    before it finished."""
    # The data stage verifies its own seed and sizes; evaluation is redone
    # whenever the detector is.
    if name not in ('upstream', 'detector'):
      return None
    world_identity = {
        'seed': self.seed, 'upstream_train': self.scale.upstream_train,
        'upstream_val': self.scale.upstream_val,
        'detection_train': self.scale.detection_train,
        'detection_val': self.scale.detection_val}
    upstream = runs.config_key(self.upstream_training().params(),
                               world_identity)
    if name == 'upstream':
      return upstream
    return runs.config_key(self.detector_training().params(), upstream)

  def run_stage(self, name: str, title: str, work: Callable,
                verify: Callable, force: bool = False) -> Dict:
    """Runs stage `name` in its folder (see `stages.run_stage`)."""
    marker = stages.run_stage(self.path(name), name, title, work, verify,
                              resumable=name in _RESUMABLE, force=force,
                              identity=self.identity(name))
    self.timings[name] = marker['seconds']
    return marker

  def run(self) -> Dict:
    """Runs every stage; writes and returns the summary."""
    try:
      os.makedirs(self.root, exist_ok=True)
      probe = os.path.join(self.root, '.writable')
      with open(probe, 'w') as f:
        f.write('ok')
      os.remove(probe)
    except OSError as e:
      raise SystemExit(f'--output_dir={self.root!r} is not writable ({e}); '
                       'accepted: a directory you can create and write.')
    markers = {}
    redone = False
    for name, title, work, verify in self.stages():
      markers[name] = self.run_stage(name, title, work, verify, force=redone)
      redone = redone or 'skipped' not in markers[name]
    summary = {
        'backbone': self.backbone,
        'scale': dataclasses.asdict(self.scale),
        'seed': self.seed,
        'precision': precision.describe(self.precision,
                                        self.precision_reason),
        'upstream': markers['upstream']['metrics'],
        'results': markers['evaluate']['results'],
        'seconds': self.timings,
        'peak_rss_mb': _peak_rss_mb(),
        'predictions_png': self.path('evaluate', 'predictions.png'),
    }
    with open(self.path('summary.json'), 'w') as f:
      json.dump(summary, f, indent=2)
    text = render_summary(summary)
    with open(self.path('summary.md'), 'w') as f:
      f.write(text)
    print(text, flush=True)
    return summary


def _peak_rss_mb() -> float:
  """Peak resident memory of this process and of its finished children."""
  own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  return max(own, children) / 1024.0


def _precision_line(summary: Dict) -> str:
  found = summary.get('precision')
  if not found:  # A summary from before precision was a choice.
    return 'float32'
  return f"{found['dtype']} ({found['reason']})" if found['reason'] else (
      found['dtype'])


def render_summary(summary: Dict) -> str:
  """A markdown summary a person can read."""
  box = summary['results']['box']
  rows = ['| metric | box |', '|---|---|']
  for name in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc',
               'APf'):
    rows.append(f'| {name} | {box[name]:.3f} |')
  seconds = summary['seconds']
  timing = ', '.join(f'{k} {v:.0f}s' for k, v in seconds.items())
  upstream = summary['upstream']
  accuracy = upstream.get('accuracy', float('nan'))
  # Named only when not the default, so a ResNet demo's summary reads as
  # before.
  kind = summary.get('backbone', 'resnet')
  backbone = '' if kind == 'resnet' else f'Backbone: {BACKBONE_TITLES[kind]}. '
  lines = [
      '# Shapes-world demo: frozen-backbone Faster R-CNN',
      '',
      f"{backbone}Seed {summary['seed']}. "
      f'Precision: {_precision_line(summary)}. '
      f'Upstream classification top-1 accuracy (val): {accuracy:.3f}',
      '',
      'Validation metrics (COCO AP; APr/APc/APf average the per-class AP of '
      'rare / common / frequent classes):',
      '',
      *rows,
      '',
      f'Wall time: {sum(seconds.values()):.0f}s ({timing}). '
      f"Peak memory: {summary['peak_rss_mb']:.0f} MB.",
      f"Predictions drawn in {summary['predictions_png']}.",
      '',
  ]
  return '\n'.join(lines)
