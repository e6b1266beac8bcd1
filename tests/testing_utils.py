"""Tiny experiments, toy data and classification checkpoints for the tests."""
import functools
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from official.core import exp_factory
from official.core import task_factory
from official.core import train_utils
from official.modeling import hyperparams
from official.vision.configs import image_classification
from official.vision.tasks import image_classification as classification_task
import numpy as np
from PIL import Image
import tensorflow as tf
import tf_keras

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.configs import resolve
from backbone_reuse.shapes import lvis_world as shapes_lvis
from backbone_reuse.shapes import toy_coco

REPO = pathlib.Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=None)
def toy_data() -> dict:
  """Generates the toy COCO set once per test session: {split: glob}."""
  output_dir = tempfile.mkdtemp(prefix='toy_coco_')
  patterns = toy_coco.make(output_dir)
  patterns['val_annotations'] = os.path.join(output_dir, 'raw', 'val',
                                             'annotations.json')
  return patterns


@functools.lru_cache(maxsize=None)
def shapes_lvis_data() -> dict:
  """A small Shapes world in LVIS format, once per test session."""
  return shapes_lvis.make(tempfile.mkdtemp(prefix='shapes_lvis_'),
                          train_images=60, val_images=40)


def tiny_config(experiment: str, backbone_strategy: str = 'scratch',
                init_checkpoint=None, task_overrides=None):
  """The registered experiment + its committed smoke YAML, on the toy set
  (+ `task_overrides`, a dict applied to the task last)."""
  params = exp_factory.get_exp_config(experiment)
  smoke = 'retinanet_tiny.yaml' if 'retinanet' in experiment else (
      'rcnn_tiny.yaml')
  params = hyperparams.override_params_dict(
      params, str(REPO / 'configs' / 'smoke' / smoke), is_strict=True)
  data = toy_data()
  params.override({
      'task': {
          'backbone_strategy': backbone_strategy,
          'init_checkpoint': init_checkpoint,
          'annotation_file': data['val_annotations'],
          'train_data': {'input_path': data['train']},
          'validation_data': {'input_path': data['val']},
      }
  }, is_strict=True)
  if task_overrides:
    params.override({'task': task_overrides}, is_strict=True)
  resolve.fill_derived(params)  # As the parser does.
  params.validate()
  return params


def build_task(params, logging_dir=None):
  return task_factory.get_task(params.task, logging_dir=logging_dir)


def classification_model(model_config):
  """A Model Garden image classifier with the detector's backbone."""
  config = image_classification.ImageClassificationTask(
      model=image_classification.ImageClassificationModel(
          num_classes=3,
          input_size=list(model_config.input_size),
          backbone=model_config.backbone,
          norm_activation=model_config.norm_activation))
  return classification_task.ImageClassificationTask(config).build_model()


def write_classification_checkpoint(model_config, directory: str,
                                    layout: str = 'nested'):
  """Writes a classifier checkpoint; returns (path, classifier).

  Layouts: 'nested' = Checkpoint(model=classifier) (backbone under the model),
  'root' = Checkpoint(backbone=backbone), 'trainer' = what Model Garden's
  trainer writes (model plus its checkpoint_items at the root).
  """
  classifier = classification_model(model_config)
  # Distinct from a fresh initialisation, so that equality after restore
  # means something; small and positive so variances stay valid.
  for variable in classifier.backbone.weights:
    variable.assign_add(tf.abs(tf.random.normal(variable.shape, stddev=0.01)))
  if layout == 'nested':
    checkpoint = tf.train.Checkpoint(model=classifier)
  elif layout == 'root':
    checkpoint = tf.train.Checkpoint(backbone=classifier.backbone)
  else:
    checkpoint = tf.train.Checkpoint(
        model=classifier, global_step=tf.Variable(0, dtype=tf.int64),
        **classifier.checkpoint_items)
  path = checkpoint.save(os.path.join(directory, 'ckpt'))
  return path, classifier


def train_steps(task, model, params, steps: int, distribution=None):
  """Runs `steps` real `task.train_step`s on the task's training data.

  Build and initialise `model` under `distribution.scope()` first.

  Returns:
    (optimizer, metrics, {variable ref: value before training}).
  """
  distribution = distribution or tf.distribute.get_strategy()
  with distribution.scope():
    optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                      params.runtime)
    metrics = task.build_metrics(training=True)
  dataset = distribution.distribute_datasets_from_function(
      lambda context: task.build_inputs(params.task.train_data, context))
  iterator = iter(dataset)
  before = {v.ref(): v.numpy() for v in model.weights}

  @tf.function
  def step(inputs):
    return distribution.run(task.train_step, args=(inputs, model, optimizer),
                            kwargs={'metrics': metrics})

  for _ in range(steps):
    step(next(iterator))
  return optimizer, metrics, before


def trained_model_dir(directory, experiment, strategy, task_overrides=None):
  """A tiny detector whose weights differ from any fresh initialisation,
  saved as training saves it (params.yaml + Checkpoint(model=...)).

  Returns:
    (params, task, model, model_dir).
  """
  checkpoint = None
  if strategy != 'scratch':  # A classifier with the overrides' backbone.
    model = (task_overrides or {}).get('model', {})
    probe = tiny_config(experiment, task_overrides={
        'model': {k: v for k, v in model.items()
                  if k in ('backbone', 'decoder')}})
    checkpoint, _ = write_classification_checkpoint(
        probe.task.model, directory, 'trainer')
  params = tiny_config(experiment, strategy, checkpoint, task_overrides)
  task = build_task(params)
  model = task.build_model()
  task.initialize(model)
  rng = np.random.RandomState(0)
  for variable in model.weights:  # Adapters' zero-initialised convs too.
    if 'moving_variance' not in variable.name:
      value = variable.numpy()
      variable.assign(value * rng.normal(1, 0.05, value.shape).astype(
          value.dtype) + rng.normal(0, 1e-3, value.shape).astype(value.dtype))
  model_dir = os.path.join(directory, f'{experiment}_{strategy}')
  train_utils.serialize_config(params, model_dir)
  tf.train.Checkpoint(model=model, global_step=tf.Variable(7)).save(
      os.path.join(model_dir, 'ckpt'))
  return params, task, model, model_dir


# A tiny plain ViT with the simple feature pyramid (task overrides): patch 8
# on the toy set's 64-pixel images, 8x8 tokens, one level (3).
PLAIN_VIT_BLOCKS = 2
PLAIN_VIT = {'backbone': {'type': 'plain_vit', 'plain_vit': {
                 'patch_size': 8, 'hidden_size': 32,
                 'transformer': {'mlp_dim': 64, 'num_heads': 2,
                                 'num_layers': PLAIN_VIT_BLOCKS}}},
             'decoder': {'type': 'simple_fpn',
                         'simple_fpn': {'num_filters': 16}}}

# The detector components that must train beside a frozen backbone.
DETECTOR_MODULES = {
    'backbone_reuse_fasterrcnn_coco': ('decoder', 'rpn_head',
                                       'detection_head'),
    'backbone_reuse_maskrcnn_coco': ('decoder', 'rpn_head', 'detection_head',
                                     'mask_head'),
    'backbone_reuse_cascadercnn_coco': ('decoder', 'rpn_head',
                                        'detection_head'),
    'backbone_reuse_retinanet_coco': ('decoder', 'head'),
}


def module_variables(model, name, trainable_only=True):
  module = model.checkpoint_items[name]
  parts = module if isinstance(module, (list, tuple)) else [module]
  return [v for p in parts
          for v in (p.trainable_weights if trainable_only else p.weights)]


def assert_frozen(test, model, optimizer, before, detector_modules):
  """The freeze invariants after real training steps: backbone weights and
  BatchNorm statistics bit-identical (and float32), no L2 term, no
  optimizer slot; every kernel of `detector_modules` moved."""
  backbone = model.backbone
  test.assertFalse(backbone.trainable)
  test.assertEmpty(backbone.trainable_weights)
  stats = [v for v in backbone.weights if 'moving_' in v.name]
  test.assertNotEmpty(stats)
  for variable in backbone.weights:
    test.assertEqual(variable.dtype, tf.float32, msg=variable.name)
    test.assertAllEqual(before[variable.ref()], variable.numpy(),
                        msg=variable.name)
  # No L2 term from frozen weights reaches the loss.
  test.assertEmpty(backbone.losses)
  test.assertNotEmpty(model.losses)
  # No optimizer slot for any backbone variable; one per trainable one.
  test.assertIsInstance(optimizer, tf_keras.optimizers.legacy.Optimizer)
  slot_names = optimizer.get_slot_names()
  test.assertIn('momentum', slot_names)
  for variable in backbone.weights:
    for name in slot_names:
      with test.assertRaises(KeyError, msg=variable.name):
        optimizer.get_slot(variable, name)
  for variable in model.trainable_weights:
    optimizer.get_slot(variable, 'momentum')
  # Detector components train: every kernel moves (a BatchNorm gamma may
  # not, at warm-up learning rates, by float32 rounding).
  for name in detector_modules:
    kernels = [v for v in module_variables(model, name)
               if 'kernel' in v.name]
    test.assertNotEmpty(kernels, msg=name)
    unchanged = [v.name for v in kernels
                 if (before[v.ref()] == v.numpy()).all()]
    test.assertEmpty(unchanged, msg=name)


def run_module(module: str, *flags):
  """`python -m MODULE FLAGS...` from the repo root, output captured."""
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=REPO,
                        capture_output=True, text=True, check=False)


def error_lines(result):
  """The `error:` lines a CLI subprocess printed on stderr (TensorFlow's own
  log lines around them left out)."""
  return [l for l in result.stderr.splitlines() if l.startswith('error:')]


# A user's own ids: not contiguous, not from 1, in the thousands; the last
# category has no annotation.
OWN_CATEGORIES = [{'id': 1001, 'name': 'kettle'}, {'id': 2500, 'name': 'mug'},
                  {'id': 3999, 'name': 'teapot'}, {'id': 5000, 'name': 'urn'}]
OWN_ANNOTATED = 3  # Categories with annotations: the first three.


def own_coco_dataset(directory, num_images=3, sizes=((48, 64),)):
  """A tiny COCO instances file with the ids above and its JPEGs, image i
  of size sizes[i % len(sizes)] (height, width)."""
  image_dir = os.path.join(directory, 'images')
  os.makedirs(image_dir, exist_ok=True)
  images, annotations = [], []
  for index in range(num_images):
    name = f'photo_{index}.jpg'
    height, width = sizes[index % len(sizes)]
    Image.fromarray(np.full((height, width, 3), 40 * index, np.uint8)).save(
        os.path.join(image_dir, name))
    images.append({'id': 100 + index, 'file_name': name, 'height': height,
                   'width': width})
    category = OWN_CATEGORIES[index % OWN_ANNOTATED]['id']
    annotations.append({'id': index + 1, 'image_id': 100 + index,
                        'category_id': category, 'bbox': [4, 6, 20, 10],
                        'area': 200, 'iscrowd': 0})
  annotation_file = os.path.join(directory, 'instances.json')
  with open(annotation_file, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': OWN_CATEGORIES}, f)
  return annotation_file, image_dir
