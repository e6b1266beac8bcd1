"""Serving a trained detector: the SavedModel export and the loud restore.

The model is built by *our* task's `build_model` (so every backbone strategy,
residual adapters, every decoder and stage-2 models export) and served by
Model Garden's detection serving module and export library; the restore is
loud: every model variable must be matched and every model variable of the
checkpoint used (modeling/backbone_checkpoint.py). `export` writes the
SavedModel (signature `serving_default` of the input type, plus
`image_tensor` for uint8 images of any size), params.yaml and label_map.json
(class index -> category id and name). Used by the export and predict
command lines (backbone_reuse/export.py, backbone_reuse/predict.py).
"""
import json
import os
import time

from typing import Dict, Optional, Sequence

from absl import logging
from official.core import task_factory
from official.vision.serving import detection
from official.vision.serving import export_saved_model_lib
import tensorflow as tf
# Internal, the one reach into Keras here (tests/test_export.py fails if the
# pinned tf-keras moves it): see `export`.
from tf_keras.src.saving.legacy.saved_model import utils as keras_saving

from backbone_reuse import errors
from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.configs import resolve
from backbone_reuse.configs import detection as detection_config
from backbone_reuse.data import category_map
from backbone_reuse.modeling import backbone_checkpoint

# Our flag values -> Model Garden's serving function keys.
INPUT_TYPES = {
    'image_tensor': 'image_tensor',
    'encoded_image_string_tensor': 'image_bytes',
    'tf_example': 'tf_example',
}
IMAGE_TENSOR_SIGNATURE = 'image_tensor'
LABEL_MAP_FILENAME = 'label_map.json'
PARAMS_FILENAME = 'params.yaml'
# NMS versions that accept an unknown batch size (Model Garden's serving
# module switches the others to 'batched' for the same reason).
_DYNAMIC_BATCH_NMS = ('batched', 'v2', 'v3')
BadInput = errors.BadInput


class DetectionModule(detection.DetectionModule):
  """Model Garden's detection serving module on a model built by our task."""

  def _build_model(self):
    generator = self.params.task.model.detection_generator
    if (self._batch_size is None
        and generator.nms_version not in _DYNAMIC_BATCH_NMS):
      logging.info("nms_version %r -> 'batched' for a dynamic batch size.",
                   generator.nms_version)
      generator.nms_version = 'batched'
    return task_factory.get_task(self.params.task).build_model()


def build_module(params, checkpoint: str, batch_size: Optional[int] = None,
                 input_type: str = 'image_tensor') -> DetectionModule:
  """The serving module with every variable restored from `checkpoint`.

  Raises:
    BadInput: unknown input type, or the checkpoint does not match.
  """
  if input_type not in INPUT_TYPES:
    raise BadInput(f'--input_type={input_type!r}; accepted: '
                   f'{", ".join(INPUT_TYPES)}.')
  module = DetectionModule(
      params, batch_size=batch_size,
      input_image_size=list(params.task.model.input_size[:2]),
      input_type=INPUT_TYPES[input_type])
  try:
    backbone_checkpoint.restore_detector(module.model, checkpoint)
  except backbone_checkpoint.BackboneCheckpointError as error:
    raise BadInput(errors.one_line(error)) from None
  return module


def class_labels(params, annotation_file: str = '') -> Dict:
  """label_map.json's content: the detector's classes as categories.

  Categories come from `annotation_file`, else the task's annotation_file;
  with neither on disk, category id i is named class_i (the ids are the
  task's `class_category_ids`, else the class indices). Class index i is
  `class_category_ids`' i-th id when the run maps ids.
  """
  num_classes = params.task.model.num_classes
  source = annotation_file or params.task.annotation_file or ''
  if annotation_file and not tf.io.gfile.exists(annotation_file):
    raise BadInput(f'--annotation_file={annotation_file!r}: no such file.')
  if source and tf.io.gfile.exists(source):
    with tf.io.gfile.GFile(source) as f:
      categories = json.load(f).get('categories')
    if not isinstance(categories, list):
      raise BadInput(f'{source!r} has no "categories" list; accepted: a '
                     'COCO/LVIS annotation file.')
  else:
    mapped = list(params.task.class_category_ids)
    ids = mapped or range(1, num_classes)
    logging.warning('No annotation file (%r) for class names; naming '
                    'category id i class_i.', source)
    source = ''
    categories = [{'id': i, 'name': f'class_{i}'} for i in ids]
  try:
    classes = category_map.label_map(
        categories, num_classes, params.task.class_category_ids,
        detection_config.records_carry_class_indices(params.task))
  except ValueError as error:
    raise BadInput(f'{source!r}: {error}') from None
  return {'source': source, 'num_classes': num_classes, 'classes': classes,
          'categories': categories}


def resolve_params(experiment: str, config_files: Sequence[str],
                   params_override: str, checkpoint: str):
  """The experiment config as training resolved it (see module docstring)."""
  files = list(config_files)
  if not files and tf.io.gfile.isdir(checkpoint):
    saved = os.path.join(checkpoint, PARAMS_FILENAME)
    if tf.io.gfile.exists(saved):
      logging.info('Config: %s', saved)
      files = [saved]
  try:
    return resolve.experiment_config(experiment, files, params_override)
  except (ValueError, KeyError, AttributeError) as error:
    raise BadInput(f'--experiment={experiment!r} with --config_file={files} '
                   f'does not resolve: {errors.one_line(error)}') from None


def export(params, checkpoint: str, export_dir: str,
           batch_size: Optional[int] = None,
           input_type: str = 'image_tensor',
           annotation_file: str = '') -> Dict:
  """Writes the SavedModel, params.yaml and label_map.json to `export_dir`.

  Returns:
    {'seconds', 'size_mb', 'signatures'} of the export.
  """
  start = time.perf_counter()
  labels = class_labels(params, annotation_file)
  module = build_module(params, checkpoint, batch_size, input_type)
  function_keys = {INPUT_TYPES[input_type]:
                   tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY}
  if input_type != 'image_tensor':
    function_keys['image_tensor'] = IMAGE_TENSOR_SIGNATURE
  # The module's signatures are what is served. Keras would also trace the
  # model's own call (our task built it with a symbolic call), including the
  # training call, which needs ground truth: skip Keras's layer traces.
  with keras_saving.keras_option_scope(save_traces=False):
    export_saved_model_lib.export_inference_graph(
        input_type=INPUT_TYPES[input_type], batch_size=batch_size,
        input_image_size=list(params.task.model.input_size[:2]),
        params=params, checkpoint_path=None, export_dir=export_dir,
        export_module=module, function_keys=function_keys)
  with tf.io.gfile.GFile(os.path.join(export_dir, LABEL_MAP_FILENAME),
                         'w') as f:
    json.dump(labels, f, indent=1)
  size = sum(os.path.getsize(os.path.join(d, n))
             for d, _, names in os.walk(export_dir) for n in names)
  return {'seconds': round(time.perf_counter() - start, 2),
          'size_mb': round(size / 2**20, 2),
          'signatures': sorted(function_keys.values())}
