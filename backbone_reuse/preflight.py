"""Checks a run's inputs in seconds, before training starts (only the
checkpoint check builds a model, to restore the checkpoint into it).

What accelerator time is lost to, found up front, each problem one line
naming the field, the value and what is accepted:
  * every TFRecord input pattern matches files, and its first record decodes
    with the task's decoder;
  * the annotation files the task reads load as COCO/LVIS JSON;
  * the detector's `task.model.num_classes` holds the dataset's categories:
    the annotation file's ids (as Model Garden's converter keeps them, or as
    `task.class_category_ids` maps them) and the labels of the first
    training records;
  * when the init checkpoint's folder holds the classification run's
    params.yaml (published Model Garden checkpoints do), its backbone config
    is the row's (type, model id, depth and width multipliers, SE ratio,
    stem, shortcuts ...), every difference named;
  * the init checkpoint exists and restores every backbone variable (the
    loud loader on a freshly built backbone), or, with
    init_checkpoint_modules 'all', every detector variable;
  * the model dir is writable.
Run by `backbone_reuse.train` and `backbone_reuse.reproduce`.
"""
import json
import os
import time
import uuid
from typing import Dict, List, Tuple

from absl import logging
from official.core import task_factory
from official.modeling.hyperparams import params_dict
from official.vision.modeling.backbones import vit
from google.protobuf import message as message_lib
import tensorflow as tf
import tf_keras
import yaml

from backbone_reuse import errors
from backbone_reuse.configs import class_balanced
from backbone_reuse.configs import strategies
from backbone_reuse.configs import detection as detection_config
from backbone_reuse.data import category_map
from backbone_reuse.data import tfrecord_check
from backbone_reuse.dataloaders import decoders
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.modeling import strategy as strategy_lib

EXIT_CODE = errors.BAD_INPUT_EXIT_CODE


class PreflightError(ValueError):
  """One or more problems, one per line."""

  def __init__(self, problems: List[str]):
    super().__init__('\n'.join(problems))
    self.problems = problems


def check_inputs(task_config) -> List[str]:
  """Every data config's patterns match files; the first record decodes."""
  problems = []
  for name in ('train_data', 'validation_data'):
    data = getattr(task_config, name)
    if data.tfds_name:  # TFDS finds its own files.
      continue
    field = f'task.{name}.input_path'
    pattern = tfrecord_check.joined_pattern(data.input_path)
    try:
      files = tfrecord_check.shards(pattern)
    except ValueError as error:
      problems.append(f'{field}={pattern!r}: {error} Accepted: '
                      'comma-separated glob(s) of TFRecord shards (e.g. '
                      'written by Model Garden\'s create_coco_tf_record).')
      continue
    detection = detection_config.is_detection_task(task_config)
    try:
      record = next(iter(tf.data.TFRecordDataset(files[0]).take(1)), None)
      if record is None:
        raise ValueError('the shard holds no record')
      if detection:
        decoders.build(task_config.model, data).decode(record)
      else:  # Other tasks' decoders vary; a tf.Example at least.
        tf.train.Example.FromString(record.numpy())
    except (tf.errors.OpError, ValueError, KeyError,
            message_lib.DecodeError) as error:
      reason = getattr(error, 'message', str(error)).strip().splitlines()
      kind = 'a detection tf.Example' if detection else 'a tf.Example'
      problems.append(
          f'{field}={pattern!r}: the first record of {files[0]} does not '
          f'decode as {kind} ({reason[0] if reason else error}); check it '
          f'with {tfrecord_check.command_for(pattern)}')
  return problems


def _annotation_files(task_config) -> List[Tuple[str, str]]:
  found = [('task.annotation_file',
            getattr(task_config, 'annotation_file', ''))]
  balanced = getattr(task_config, 'class_balanced_loss', None)
  if balanced is not None and balanced.type != class_balanced.NONE:
    found.append(('task.class_balanced_loss.annotation_file',
                  balanced.annotation_file))
  sampling = getattr(task_config.train_data, 'repeat_factor_sampling', None)
  if sampling is not None and sampling.threshold > 0:
    found.append(('task.train_data.repeat_factor_sampling.annotation_file',
                  sampling.annotation_file))
  return [(field, path) for field, path in found if path]


def check_annotation_files(task_config) -> List[str]:
  """Each annotation file the task reads is a COCO/LVIS JSON."""
  problems = []
  for field, path in _annotation_files(task_config):
    accepted = 'accepted: a COCO/LVIS JSON with images, annotations, categories'
    if not tf.io.gfile.exists(path):
      problems.append(f'{field}={path!r}: no such file; {accepted}.')
      continue
    try:
      with tf.io.gfile.GFile(path) as f:
        content = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
      problems.append(f'{field}={path!r} is not JSON ({error}); {accepted}.')
      continue
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(content, dict)
               or not isinstance(content.get(k), list)]
    if missing:
      problems.append(f'{field}={path!r} has no {"/".join(missing)} list; '
                      f'{accepted}.')
  return problems


_LABELS_SAMPLED = 64  # Training records whose labels are checked.


def check_num_classes(task_config) -> List[str]:
  """`task.model.num_classes` (and `task.class_category_ids`, when the run
  maps ids to class indices) can hold the dataset's classes and the labels
  of its training records."""
  if (not detection_config.is_detection_task(task_config)
      or not task_config.annotation_file):
    return []
  num_classes = task_config.model.num_classes
  mapped = list(task_config.class_category_ids)
  try:
    categories = category_map.load_categories(task_config.annotation_file)
    ids = sorted(int(c['id']) for c in categories)
  except (OSError, ValueError, KeyError, TypeError, tf.errors.OpError):
    return []  # An unreadable file is check_annotation_files' problem.
  source = f'task.annotation_file={task_config.annotation_file!r}'
  if not ids:
    return [f'{source} lists no categories; accepted: a COCO/LVIS JSON with '
            'the categories of the training records.']
  carry_indices = detection_config.records_carry_class_indices(task_config)
  try:
    category_map.label_map(categories, num_classes, mapped, carry_indices)
  except ValueError as error:
    if mapped or carry_indices:
      return [f'{source}: {error}']
    keep = (f', or to {ids[-1] + 1} to keep the ids as labels'
            if ids[0] >= 1 else '')
    return [f'task.model.num_classes={num_classes} cannot hold the '
            f'{len(ids)} categories of {source} (ids {ids[0]}..{ids[-1]}, '
            "kept as labels by Model Garden's converter): set it to 0 to map "
            f'the ids to class indices 1..{len(ids)}{keep}.']
  data = task_config.train_data
  if data.tfds_name:
    return []
  try:
    files = tfrecord_check.shards(
        tfrecord_check.joined_pattern(data.input_path))
    decoder = decoders.build(task_config.model, data)  # The labels as stored.
    labels = set()
    for record in tf.data.TFRecordDataset(files[:1]).take(_LABELS_SAMPLED):
      labels.update(int(label) for label in
                    decoder.decode(record)['groundtruth_classes'].numpy())
  except (ValueError, KeyError, tf.errors.OpError):
    return []  # check_inputs names what is wrong with the records.
  if mapped:
    unknown = sorted(labels - set(mapped))
    if not unknown:
      return []
    return [f'class label {unknown[0]} of the training records ({files[0]}) '
            'is no category id of task.class_category_ids (ids '
            f'{mapped[0]}..{mapped[-1]}); accepted: records converted from '
            'the annotation file the map was made from.']
  largest = max(labels, default=-1)
  if largest < num_classes:
    return []
  return [f'task.model.num_classes={num_classes} cannot hold class label '
          f'{largest} of the training records ({files[0]}); the records '
          "keep the dataset's category ids: set it to 0 to map them to class "
          f'indices, or to at least {max(largest, ids[-1]) + 1}.']


# Backbone fields that only change how a backbone trains, not which weights
# it has or what they compute: a checkpoint may differ from the row there.
_TRAINING_ONLY_FIELDS = ('stochastic_depth_drop_rate', 'bn_trainable')
PARAMS_FILE = 'params.yaml'


def _checkpoint_params(path: str):
  """The params.yaml beside the checkpoint `path` names, or None."""
  prefix = backbone_checkpoint.resolve_path(path)
  for folder in dict.fromkeys([os.path.dirname(prefix), path]):
    candidate = os.path.join(folder, PARAMS_FILE)
    if tf.io.gfile.exists(candidate):
      # Model Garden's reader: its params.yaml carries Python tags (tuples).
      return candidate, params_dict.read_yaml_to_params_dict(
          candidate).as_dict()
  return None


# The ViT fields that decide the variables a detector's feature maps come
# from. The others change training (dropout, stochastic depth),
# initialisation or outputs; representation_size adds a pre-logits layer
# after the pooled token that no feature map passes (DeiT's checkpoints have
# one; a row that asks for one the checkpoint lacks is named by the loud
# loader); the position embedding's grid is resized when restored.
_VIT_WEIGHT_FIELDS = ('hidden_size', 'patch_size', 'pooler',
                      'layer_scale_init_value',
                      'transformer.mlp_dim', 'transformer.num_heads',
                      'transformer.num_layers')


def _vit_sizes(kind: str, fields: Dict) -> Dict:
  """The weight fields of a ViT config as built: Model Garden's 'vit' builder
  overrides its fields with VIT_SPECS[model_name]; 'plain_vit' uses them."""
  fields = dict(fields)
  if kind == 'vit':
    spec = vit.VIT_SPECS.get(fields.get('model_name'), {})
    fields.update({name: value for name, value in spec.items()
                   if name != 'transformer'})
    fields['transformer'] = {**(fields.get('transformer') or {}),
                             **spec.get('transformer', {})}
  sizes = {}
  for name in _VIT_WEIGHT_FIELDS:
    group, _, field = name.rpartition('.')
    found = (fields.get(group) or {}) if group else fields
    if field in found:
      sizes[name] = found[field]
  return sizes


def backbone_differences(ours: Dict, theirs: Dict) -> List[str]:
  """'field: checkpoint X, row Y' for each backbone field that differs
  (training-only fields, and fields the checkpoint's config lacks, left out).
  Two ViTs ('vit' or 'plain_vit') are compared by the fields that fix their
  variables, a 'vit' sized by its model_name as Model Garden builds it."""
  mine_kind, their_kind = ours.get('type'), theirs.get('type')
  if mine_kind in strategies.VIT_TYPES and their_kind in strategies.VIT_TYPES:
    mine = _vit_sizes(mine_kind, ours.get(mine_kind) or {})
    other = _vit_sizes(their_kind, theirs.get(their_kind) or {})
    source = '' if their_kind != 'vit' or mine_kind == 'vit' else (
        f' ({their_kind} '
        f'{(theirs.get(their_kind) or {}).get("model_name")!r})')
    return [f'{mine_kind}.{field}: checkpoint {other[field]!r}{source}, '
            f'row {value!r}'
            for field, value in sorted(mine.items())
            if field in other and other[field] != value]
  if mine_kind != their_kind:
    return [f'type: checkpoint {their_kind!r}, row {mine_kind!r}']
  mine, other = ours.get(mine_kind) or {}, theirs.get(mine_kind) or {}
  return [f'{mine_kind}.{field}: checkpoint {other[field]!r}, row {value!r}'
          for field, value in sorted(mine.items())
          if field not in _TRAINING_ONLY_FIELDS and field in other
          and other[field] != value]


def check_checkpoint_params(task_config) -> List[str]:
  """The checkpoint's classification run had the row's backbone."""
  path = task_config.init_checkpoint
  if (not path or not detection_config.is_detection_task(task_config)
      or task_config.init_checkpoint_modules == strategies.WHOLE_DETECTOR):
    return []
  try:
    found = _checkpoint_params(path)
  except backbone_checkpoint.BackboneCheckpointError:
    return []  # check_checkpoint names it.
  except (tf.errors.OpError, yaml.YAMLError) as error:
    return [f'task.init_checkpoint={path!r}: its {PARAMS_FILE} cannot be '
            f'read ({type(error).__name__}).']
  if found is None:
    return []
  params_file, params = found
  theirs = (((params or {}).get('task') or {}).get('model') or {}).get(
      'backbone')
  if not isinstance(theirs, dict):
    return []  # Not a classification run's config.
  differences = backbone_differences(task_config.model.backbone.as_dict(),
                                     theirs)
  if not differences:
    return []
  return [f'task.init_checkpoint={path!r} was trained with another backbone '
          f'({params_file}): {"; ".join(differences)}. Use the checkpoint '
          "of the row's backbone, or set task.model.backbone to the "
          "checkpoint's."]


def check_checkpoint(task_config) -> List[str]:
  """The init checkpoint restores every backbone (or detector) variable."""
  path = task_config.init_checkpoint
  if not path:
    return []
  field = 'task.init_checkpoint'
  try:
    backbone_checkpoint.resolve_path(path, field)  # Before building.
    if not detection_config.is_detection_task(task_config):
      return []  # Restored by Model Garden's own task.
    if task_config.init_checkpoint_modules == strategies.WHOLE_DETECTOR:
      model = task_factory.get_task(task_config).build_model()
      backbone_checkpoint.restore_detector(model, path, flag=field)
    else:
      model_config = task_config.model
      backbone = strategy_lib.build_backbone(
          tf_keras.layers.InputSpec(shape=[None] + model_config.input_size),
          model_config, None, task_config.backbone_strategy,
          task_config.adapters)
      backbone_checkpoint.restore_backbone(backbone, path)
  except backbone_checkpoint.BackboneCheckpointError as error:
    return [errors.one_line(error)]
  except (tf.errors.OpError, ValueError) as error:
    message = getattr(error, 'message', str(error)).strip().splitlines()
    return [f'{field}={path!r} could not be checked: building the model or '
            f'reading the checkpoint failed ({message[0]}).']
  finally:
    tf_keras.backend.clear_session()
  return []


def check_model_dir(model_dir: str) -> List[str]:
  """The model dir can be created and written."""
  probe = os.path.join(model_dir, f'.preflight-{uuid.uuid4().hex}')
  try:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(probe, 'w') as f:
      f.write('ok')
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as error:
    message = getattr(error, 'message', str(error)).strip().splitlines()
    return [f'--model_dir={model_dir!r} is not writable ({message[0]}); '
            'accepted: a directory you can create and write.']
  return []


def check(params, model_dir: str, mode: str = 'train_and_eval') -> Dict:
  """Every check; returns {'problems': [...], 'seconds': float}."""
  start = time.perf_counter()
  task_config = params.task
  problems = []
  if 'train' in mode:
    problems += check_model_dir(model_dir)
  problems += check_inputs(task_config)
  problems += check_annotation_files(task_config)
  problems += check_num_classes(task_config)
  mismatch = check_checkpoint_params(task_config)
  # A different backbone cannot restore: say why, and build nothing.
  problems += mismatch or check_checkpoint(task_config)
  seconds = time.perf_counter() - start
  logging.info('Preflight: %d problem(s) in %.1f s.', len(problems), seconds)
  return {'problems': problems, 'seconds': seconds}


def run(params, model_dir: str, mode: str = 'train_and_eval') -> float:
  """`check`, raising PreflightError if anything is wrong; the seconds."""
  found = check(params, model_dir, mode)
  if found['problems']:
    raise PreflightError(found['problems'])
  return found['seconds']
