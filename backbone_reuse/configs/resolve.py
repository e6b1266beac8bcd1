"""Builds an experiment config exactly as `backbone_reuse.train` does.

Used by tests, the paper-table manifest and experiment drivers, so that what
they check or run is what the documented command would run. The experiments
are looked up by name: a caller imports `backbone_reuse.registry_imports`
(which registers them) first; this module does not, so that the configs
layer loads no task, model or Shapes code.
"""
import dataclasses
import os
from typing import Optional, Sequence

from absl import logging
from official.core import train_utils
from official.modeling import hyperparams
import tensorflow as tf

from backbone_reuse.configs import detection
from backbone_reuse.configs import schedule
from backbone_reuse.data import category_map
from backbone_reuse.configs import class_balanced


@dataclasses.dataclass
class _Flags:
  """The subset of Model Garden's flags that `ExperimentParser` reads."""
  experiment: str
  config_file: Sequence[str]
  params_override: object = ''  # A string or a nested dict.
  tpu: str = ''
  seed: Optional[int] = None

  def __contains__(self, name):
    return hasattr(self, name)


class ExperimentParser(train_utils.ExperimentParser):
  """Model Garden's parser, whose learning-rate schedule follows train_steps.

  Each layer (a YAML, then --params_override) that sets `trainer.train_steps`
  and none of the schedule's step counts rescales them (configs/schedule.py).
  """

  def parse_config_file(self, params):
    for config_file in self._flags_obj.config_file or []:
      params = _apply_layer(params, config_file, config_file)
    return params

  def parse_params_override(self, params):
    return _apply_layer(params, self._flags_obj.params_override,
                        '--params_override')

  def parse(self):
    params = super().parse()
    if 'seed' in self._flags_obj and self._flags_obj.seed is not None:
      apply_seed(params, self._flags_obj.seed)
    return params


def apply_seed(params, seed: int) -> None:
  """One seed for the run's randomness: the training data's order (Model
  Garden's `seed`, deterministic), Copy-Paste's source stream and
  repeat-factor sampling; `training.run` seeds the initialisation (and the
  augmentation ops' seeds) from task.train_data.seed."""
  data = params.task.train_data
  data.seed = seed
  data.deterministic = True
  if isinstance(data, detection.DataConfig):
    data.parser.copy_paste.seed = seed
    data.repeat_factor_sampling.seed = seed


def _apply_layer(params, layer, source: str):
  """Model Garden's strict override by one layer (a YAML path, or an override
  string or dict), then the schedule follows the steps it set."""
  # The layer as a nested dict, read by Model Garden's own parser into an
  # empty (non-strict) ParamsDict: which fields it sets, not their effect.
  fields = hyperparams.ParamsDict()
  hyperparams.override_params_dict(fields, layer, is_strict=False)
  old_steps = params.trainer.train_steps
  params = hyperparams.override_params_dict(params, layer, is_strict=True)
  schedule.follow(params.trainer, old_steps, fields.as_dict(), source)
  return params


def parse(flags_obj):
  """Factory -> YAMLs -> runtime flags -> override; the schedule checked;
  a detector's `num_classes: 0` read from its annotations."""
  params = ExperimentParser(flags_obj).parse()
  schedule.check(params.trainer)
  fill_derived(params)
  return params


def fill_derived(params) -> None:
  """The values a detection config derives from its data files, filled in
  once, when the config is resolved: the class count, then the class
  weights (each recorded in params.yaml)."""
  fill_num_classes(params)
  fill_class_weights(params)


def fill_class_weights(params) -> None:
  """An R-CNN task's `task.class_balanced_loss` becomes Model Garden's
  per-class `task.losses.class_weights`, from the annotation counts of its
  training JSON (configs/class_balanced.py), marked `resolved`."""
  task = params.task
  balanced = getattr(task, 'class_balanced_loss', None)
  if (balanced is None or balanced.type == class_balanced.NONE
      or balanced.resolved):
    return
  if task.losses.class_weights:
    return  # Both set: validation refuses it, naming both.
  if not balanced.annotation_file:
    return  # Validation names the missing file.
  if not tf.io.gfile.exists(balanced.annotation_file):
    # Left unresolved: preflight names the file (a dry run can plan a row
    # whose data is elsewhere), and building the task refuses it.
    return
  counts = class_balanced.annotation_counts(balanced.annotation_file)
  expected = list(task.class_category_ids)
  if expected and sorted(int(c['id']) for c in category_map.load_categories(
      balanced.annotation_file)) != expected:
    raise ValueError(
        f'task.class_balanced_loss.annotation_file='
        f'{balanced.annotation_file!r} has category ids other than the '
        f'{len(expected)} of task.class_category_ids; accepted: the '
        'training JSON of the same dataset.')
  if len(counts) + 1 != task.model.num_classes:
    raise ValueError(
        f'task.class_balanced_loss.annotation_file='
        f'{balanced.annotation_file!r} has {len(counts)} categories, but '
        f'task.model.num_classes={task.model.num_classes} expects '
        f'{task.model.num_classes - 1} (+ background).')
  task.losses.class_weights = class_balanced.class_weights(
      counts, balanced.type, balanced.beta)
  balanced.resolved = True
  logging.info('task.losses.class_weights: %s weights from %s.',
               balanced.type, balanced.annotation_file)


def fill_num_classes(params) -> None:
  """A detection task's `task.model.num_classes: 0` becomes the class count
  of `task.annotation_file`, K categories + background, so a user's own
  dataset needs no hand-computed count; when its ids are not 1..K, the map
  from class index to category id is fixed here too
  (`task.class_category_ids`). params.yaml records both. An LVIS task's
  records already carry class indices (data/lvis_conversion.py): no map."""
  task = params.task
  if not detection.is_detection_task(task) or task.model.num_classes != 0:
    return
  if task.class_category_ids:
    task.model.num_classes = len(task.class_category_ids) + 1
    return
  if not task.annotation_file:
    raise ValueError(
        'task.model.num_classes=0 means: read the class count from '
        "task.annotation_file, which is ''; set task.annotation_file to the "
        "dataset's COCO JSON, or task.model.num_classes by hand.")
  try:
    categories = category_map.load_categories(task.annotation_file)
    if not categories:
      raise ValueError('the annotation file lists no categories.')
    mapped = category_map.class_category_ids(categories)
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ValueError(
        'task.model.num_classes=0 reads the class count from '
        f'task.annotation_file={task.annotation_file!r}, which failed '
        f'({type(error).__name__}: {error}); accepted: a COCO/LVIS JSON with '
        'categories.') from None
  task.model.num_classes = len(categories) + 1
  if not detection.records_carry_class_indices(task):
    task.class_category_ids = mapped
  logging.info('task.model.num_classes=%d, from the categories of %s%s.',
               task.model.num_classes, task.annotation_file,
               f'; category ids {mapped[0]}..{mapped[-1]} map to class '
               f'indices 1..{len(mapped)}' if task.class_category_ids else '')


def parse_configuration(flags_obj):
  """`train_utils.parse_configuration` with our parser: validated, locked."""
  params = parse(flags_obj)
  params.validate()
  params.lock()
  logging.info('Final experiment parameters:\n%s', params.as_dict())
  return params


def experiment_config(experiment: str, config_files: Sequence[str] = (),
                      params_override=None,
                      root: Optional[str] = None,
                      seed: Optional[int] = None):
  """Registered factory -> each YAML (strict) -> override; then validate.

  A layer that sets trainer.train_steps and none of the schedule's step
  counts rescales them.

  Args:
    experiment: a registered experiment name.
    config_files: YAML paths, applied in order; relative ones are taken from
      `root` when given.
    params_override: a `--params_override` string, or a nested dict.
    root: directory that relative config paths start from.
    seed: as train's --seed (`apply_seed`); None leaves the config's.

  Returns:
    The validated (unlocked) ExperimentConfig.
  """
  files = [os.path.join(root, f) if root and not os.path.isabs(f) else f
           for f in config_files]
  params = parse(_Flags(experiment, files, params_override or '',
                        seed=seed))
  params.validate()
  return params
