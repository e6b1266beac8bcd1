"""One way to train and one way to evaluate, for the demo and the grid.

A `Training` is an experiment, its committed YAMLs, per-run overrides and a
seed. `train` runs it as `python -m backbone_reuse.train` in its own process
(so its peak memory is its own), keeps Model Garden's per-loop output in
MODEL_DIR/train.log and shows one progress line (step, loss, ETA).
`evaluate` restores the trained detector loudly and computes COCO metrics
(box, and mask if the model has masks) plus the LVIS-style groups.
`config_key` names a run by what it computes, not where its files are, so
that a result committed on one machine is recognised on another.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from official.core import task_factory
from pycocotools import coco
import tensorflow as tf
import tf_keras
import tqdm
import yaml

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.analysis import eval_summaries
from backbone_reuse.configs import detection
from backbone_reuse.configs import resolve
from backbone_reuse.configs import strategies
from backbone_reuse.evaluation import coco_metrics
from backbone_reuse.evaluation import predictions
from backbone_reuse.modeling import backbone_checkpoint

LOG = 'train.log'
METRICS = eval_summaries.METRICS_FILENAME
COMMAND = 'command.txt'
# Config fields that name files on this machine, not what a run computes.
_PATH_FIELDS = ('input_path', 'annotation_file', 'init_checkpoint')
# Config fields added after records were committed, each with the value at
# which runs compute what they computed before it existed: at that value the
# field is left out of a run's key, so committed records keep resuming.
_ADDED_FIELDS = {('task', 'adapters', 'learning_rate_multiplier'): 1.0,
                 ('task', 'frozen_stages'): strategies.FROZEN_STAGES_UNSET,
                 ('task', 'class_balanced_loss', 'resolved'): False,
                 ('task', 'class_category_ids'): [],
                 ('task', 'model', 'decoder', 'simple_fpn'): {
                     'num_filters': 256, 'norm': 'layer_norm'},
                 ('task', 'model', 'backbone', 'plain_vit'):
                     detection.PlainViT().as_dict()}
_STEP = re.compile(r'^train \| step:\s+(\d+) \| steps/sec')
_LOSS = re.compile(r"'(?:total_loss|training_loss)': np\.float32\(([^)]+)\)")


class RunFailed(RuntimeError):
  pass


@dataclasses.dataclass(frozen=True)
class Training:
  """What `python -m backbone_reuse.train` is asked to run."""
  experiment: str
  config_files: Tuple[str, ...]
  overrides: Dict = dataclasses.field(default_factory=dict, hash=False)
  seed: Optional[int] = None

  def params(self):
    """The resolved config, exactly as the training process resolves it."""
    return resolve.experiment_config(self.experiment, self.config_files,
                                     self.overrides, seed=self.seed)

  def argv(self, overrides_path: str, model_dir: str,
           mode: str) -> List[str]:
    seed = [] if self.seed is None else [f'--seed={self.seed}']
    return [sys.executable, '-m', 'backbone_reuse.train',
            f'--experiment={self.experiment}',
            *[f'--config_file={p}'
              for p in [*self.config_files, overrides_path]],
            *seed, f'--mode={mode}', f'--model_dir={model_dir}']


def train(training: Training, model_dir: str, mode: str, label: str) -> Dict:
  """Runs `training` in a subprocess; resumes from MODEL_DIR's checkpoint.

  Args:
    training: what to run.
    model_dir: its model dir (created).
    mode: Model Garden's mode, e.g. 'train' or 'train_and_eval'.
    label: the progress line's name.

  Returns:
    The last evaluation's metrics (MODEL_DIR/metrics.json), {} when the mode
    evaluates nothing.

  Raises:
    RunFailed: the process failed; the message ends with its last lines.
  """
  os.makedirs(model_dir, exist_ok=True)
  overrides_path = os.path.join(model_dir, 'overrides.yaml')
  with open(overrides_path, 'w') as f:
    yaml.safe_dump(training.overrides, f)
  argv = training.argv(overrides_path, model_dir, mode)
  with open(os.path.join(model_dir, COMMAND), 'w') as f:
    f.write(' '.join(argv) + '\n')
  log_path = os.path.join(model_dir, LOG)
  tail = []
  steps = training.params().trainer.train_steps
  with open(log_path, 'a') as log, tqdm.tqdm(
      total=steps, desc=f'[{label}] step', unit='step', leave=False,
      dynamic_ncols=True) as bar:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    for line in process.stdout:
      log.write(line)
      tail = (tail + [line])[-15:]
      step = _STEP.match(line)
      if step:
        bar.update(int(step.group(1)) - bar.n)
      loss = _LOSS.search(line)
      if loss:
        bar.set_postfix(loss=f'{float(loss.group(1)):.3f}', refresh=False)
    returncode = process.wait()
  if returncode:
    raise RunFailed(f'training in {model_dir} exited with {returncode}; last '
                    f'lines of {log_path}:\n' + ''.join(tail))
  if not os.path.isfile(os.path.join(model_dir, METRICS)):
    return {}
  return load_json(model_dir, METRICS)['metrics']


def evaluate(training: Training, model_dir: str,
             num_images: int) -> Tuple[Dict, List[Dict]]:
  """COCO metrics of the detector trained in `model_dir` on its task's
  validation data and annotation file.

  Returns:
    ({'box': metrics[, 'mask': metrics]}, the detections in COCO format).
  """
  params = training.params()
  task = task_factory.get_task(params.task)
  model = task.build_model()
  backbone_checkpoint.restore_detector(model, model_dir, flag='model dir')
  detections = predictions.predict(task, model, params.task.validation_data,
                                   num_images)
  ground_truth = quiet_coco(params.task.annotation_file)
  results = {'box': coco_metrics.evaluate(ground_truth, detections, 'bbox')}
  if params.task.model.include_mask:
    results['mask'] = coco_metrics.evaluate(ground_truth, detections, 'segm')
  tf_keras.backend.clear_session()
  return results, detections


def quiet_coco(annotation_file: str) -> coco.COCO:
  """pycocotools' COCO without its progress prints."""
  with contextlib.redirect_stdout(io.StringIO()):
    return coco.COCO(annotation_file)


def load_json(directory: str, filename: str) -> Dict:
  """A JSON file a run wrote (e.g. parameters.json, resources.json)."""
  with open(os.path.join(directory, filename)) as f:
    return json.load(f)


def _without_paths(tree):
  if isinstance(tree, dict):
    return {k: ('<path>' if k in _PATH_FIELDS and v else _without_paths(v))
            for k, v in tree.items()}
  return tree


def config_key(params, *inputs: Sequence) -> str:
  """A short hash of the resolved config (file paths left out) and of
  whatever else the result depends on (e.g. the upstream's key, the data's
  sizes and seed)."""
  tree = params.as_dict()
  for path, default in _ADDED_FIELDS.items():
    parent = tree
    for field in path[:-1]:
      parent = parent.get(field) if isinstance(parent, dict) else None
    if isinstance(parent, dict) and parent.get(path[-1]) == default:
      del parent[path[-1]]
  text = json.dumps([_without_paths(tree), *inputs],
                    sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


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
