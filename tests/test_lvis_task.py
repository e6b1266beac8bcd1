"""LVIS task: evaluator in Model Garden's loop, class-balanced loss, stage 2."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
from official.core import exp_factory
from official.modeling import hyperparams
import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse.configs import resolve
from backbone_reuse.evaluation import lvis_evaluator
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.configs import class_balanced

_LVIS = 'backbone_reuse_maskrcnn_lvis'
_SMOKE = testing_utils.REPO / 'configs' / 'smoke' / 'lvis_tiny.yaml'
_STAGE2 = testing_utils.REPO / 'configs' / 'lvis' / 'stage2_class_balanced.yaml'


def _lvis_config(stage2_checkpoint=None):
  """The registered LVIS experiment + its smoke YAML on Shapes LVIS data."""
  data = testing_utils.shapes_lvis_data()
  params = exp_factory.get_exp_config(_LVIS)
  params = hyperparams.override_params_dict(params, str(_SMOKE),
                                            is_strict=True)
  if stage2_checkpoint:
    params = hyperparams.override_params_dict(params, str(_STAGE2),
                                              is_strict=True)
    params.override({'task': {
        'init_checkpoint': stage2_checkpoint,
        'class_balanced_loss': {'annotation_file': data['train_annotations']},
    }}, is_strict=True)
  params.override({'task': {
      'annotation_file': data['val_annotations'],
      'train_data': {'input_path': data['train']},
      'validation_data': {'input_path': data['val']},
  }}, is_strict=True)
  resolve.fill_derived(params)  # As the parser does.
  params.validate()
  return params


def _rectangle_ground_truth(path):
  """Two images with one rectangular object each (masks = boxes)."""
  images, annotations = [], []
  for image_id, (x, y, w, h) in ((1, (10, 10, 20, 30)), (2, (40, 8, 30, 20))):
    images.append({'id': image_id, 'height': 80, 'width': 100,
                   'neg_category_ids': [3], 'not_exhaustive_category_ids': []})
    annotations.append({
        'id': image_id, 'image_id': image_id, 'category_id': image_id,
        'bbox': [x, y, w, h], 'area': w * h,
        'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]})
  with open(path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations, 'categories': [
        {'id': i, 'name': f'class {i}', 'frequency': 'rcf'[i - 1]}
        for i in (1, 2, 3)]}, f)
  return annotations


class LvisEvaluatorTest(tf.test.TestCase):

  def test_model_outputs_of_the_true_objects_score_one(self):
    path = os.path.join(self.get_temp_dir(), 'gt.json')
    annotations = _rectangle_ground_truth(path)
    evaluator = lvis_evaluator.LVISEvaluator(path, include_mask=True)
    scale = 0.5  # The model saw images resized by 0.5.
    for annotation in annotations:  # One image per batch, 3 detection slots.
      x, y, w, h = annotation['bbox']
      boxes = np.zeros((1, 3, 4), np.float32)
      boxes[0, 0] = np.array([y, x, y + h, x + w]) * scale
      boxes[0, 1] = np.array([0, 0, 10, 10]) * scale  # Unverified category.
      predictions = {
          'source_id': np.array([annotation['image_id']]),
          'image_info': np.array([[[80, 100], [40, 50], [scale, scale],
                                   [0, 0]]], np.float32),
          'num_detections': np.array([2]),
          'detection_boxes': boxes,
          # Class index == category id here; slot 2 is padding (class 0).
          'detection_classes': np.array([[annotation['category_id'],
                                          annotation['category_id'] % 2 + 1,
                                          0]]),
          'detection_scores': np.array([[0.9, 0.5, 0.0]], np.float32),
          'detection_masks': np.ones((1, 3, 28, 28), np.float32),
      }
      groundtruths = {'source_id': predictions['source_id']}
      evaluator.update_state(
          tf.nest.map_structure(tf.constant, groundtruths),
          tf.nest.map_structure(tf.constant, predictions))
    detections = evaluator.detections()
    self.assertLen(detections, 4)  # Padding dropped.
    self.assertEqual(
        [d['bbox'] for d in detections if d['score'] > 0.8],
        [a['bbox'] for a in annotations])  # Back in original pixels.
    metrics = evaluator.result()
    for name in ('AP', 'AP50', 'APr', 'APc', 'mask_AP50', 'mask_AP75'):
      self.assertAllClose(metrics[name], 1.0, msg=name)
    # Model Garden pastes 28x28 masks into the box with bilinear edges, so
    # the mask IoU with a rectangle is high but below 0.95.
    self.assertBetween(metrics['mask_AP'], 0.85, 1.0)
    self.assertEqual(metrics['APf'], -1.0)  # No frequent object.
    self.assertEqual(evaluator.detections(), [])  # result() resets.

  def test_needs_the_annotation_file(self):
    with self.assertRaisesRegex(ValueError, 'needs task.annotation_file'):
      lvis_evaluator.LVISEvaluator('', include_mask=False)


class ClassBalancedTest(tf.test.TestCase):

  def test_effective_number_weights(self):
    weights = class_balanced.class_weights([1, 10, 100, 0], 'effective_number',
                                           beta=0.9)
    raw = np.array([0.1 / (1 - 0.9 ** n) for n in (1, 10, 100, 1)])
    self.assertEqual(weights[0], 1.0)  # Background.
    self.assertAllClose(weights[1:], raw * 4 / raw.sum())
    self.assertAllClose(np.mean(weights[1:]), 1.0)
    self.assertGreater(weights[1], weights[2])
    self.assertGreater(weights[2], weights[3])

  def test_inverse_frequency_weights(self):
    weights = class_balanced.class_weights([1, 10, 100], 'inverse_frequency')
    self.assertAllClose(weights, [1.0] + list(np.array([1, 0.1, 0.01]) * 3 /
                                              1.11))

  def test_refusals(self):
    with self.assertRaisesRegex(ValueError, "type='focal'; accepted"):
      class_balanced.class_weights([1], 'focal')
    with self.assertRaisesRegex(ValueError, 'beta=1.0'):
      class_balanced.class_weights([1], 'effective_number', beta=1.0)

  def test_counts_come_from_the_training_json(self):
    path = testing_utils.shapes_lvis_data()['train_annotations']
    with open(path) as f:
      dataset = json.load(f)
    counted = collections.Counter(a['category_id']
                                  for a in dataset['annotations'])
    self.assertEqual(class_balanced.annotation_counts(path),
                     [counted[i] for i in range(1, 41)])


class StageTwoTest(tf.test.TestCase):

  def _stage_one_checkpoint(self, params):
    task = testing_utils.build_task(params)
    model = task.build_model()
    # Move every weight off its initialisation, so a restore is visible.
    for variable in model.weights:
      variable.assign_add(tf.abs(tf.random.normal(variable.shape,
                                                  stddev=0.01)))
    directory = os.path.join(self.get_temp_dir(), 'stage1')
    tf.train.Checkpoint(model=model).save(os.path.join(directory, 'ckpt'))
    return directory, _values_by_path(model)

  def _assert_only_classifiers_train(self, params, num_heads):
    task = testing_utils.build_task(params)
    model = task.build_model()
    classifiers = [head._classifier for head in model.detection_head]  # pylint: disable=protected-access
    self.assertLen(classifiers, num_heads)
    expected = {v.ref() for c in classifiers for v in c.weights}
    self.assertEqual({v.ref() for v in model.trainable_variables}, expected)
    task.initialize(model)
    optimizer, _, before = testing_utils.train_steps(task, model, params, 3)
    self.assertNotEmpty([v for v in model.weights if 'moving_' in v.name])
    for variable in model.weights:
      changed = not np.array_equal(before[variable.ref()], variable.numpy())
      self.assertEqual(changed, variable.ref() in expected, variable.name)
    slots = {s.ref() for v in model.weights if v.ref() not in expected
             for s in _slots(optimizer, v)}
    self.assertEmpty(slots)
    return task, model

  @pytest.mark.slow
  def test_lvis_mask_rcnn_restores_stage_one_and_trains_only_classifier(self):
    stage1 = _lvis_config()
    directory, stage1_weights = self._stage_one_checkpoint(stage1)
    params = _lvis_config(stage2_checkpoint=directory)
    task = testing_utils.build_task(params)
    model = task.build_model()
    task.initialize(model)
    restored = _values_by_path(model)
    self.assertEqual(set(restored), set(stage1_weights))
    for path, value in restored.items():
      self.assertAllEqual(value, stage1_weights[path], msg=path)
    weights = task.task_config.losses.class_weights
    self.assertLen(weights, 41)
    counts = class_balanced.annotation_counts(
        params.task.class_balanced_loss.annotation_file)
    rarest, commonest = int(np.argmin(counts)), int(np.argmax(counts))
    self.assertGreater(weights[rarest + 1], weights[commonest + 1])
    self._assert_only_classifiers_train(params, num_heads=1)

  @pytest.mark.slow  # Trains a stage 1 to have its checkpoint.
  def test_stage_two_refuses_another_architecture_by_the_one_rule(self):
    # Training restores a whole detector as preflight and export do
    # (backbone_checkpoint.restore_detector): a Faster R-CNN checkpoint
    # cannot start a Cascade stage 2: one error naming the flag and the
    # differing variables by checkpoint path (Model Garden's restore, used
    # before, raised a bare AssertionError listing Python objects).
    directory, _ = self._stage_one_checkpoint(
        testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco'))
    params = testing_utils.tiny_config(
        'backbone_reuse_cascadercnn_coco', 'finetune', directory,
        task_overrides={'init_checkpoint_modules': 'all',
                        'train_only_box_classifier': True})
    task = testing_utils.build_task(params)
    model = task.build_model()
    with self.assertRaisesRegex(
        backbone_checkpoint.BackboneCheckpointError,
        r"task.init_checkpoint='.*' does not match the model: \d+ "
        r'variable\(s\) differ'):
      task.initialize(model)

  @pytest.mark.slow
  def test_cascade_trains_the_classifier_of_every_stage(self):
    probe = testing_utils.tiny_config('backbone_reuse_cascadercnn_coco')
    directory, _ = self._stage_one_checkpoint(probe)
    params = testing_utils.tiny_config(
        'backbone_reuse_cascadercnn_coco', 'finetune', directory,
        task_overrides={'init_checkpoint_modules': 'all',
                        'train_only_box_classifier': True})
    self._assert_only_classifiers_train(params, num_heads=3)

  def test_refusals(self):
    cases = {
        'stage 2 needs the whole detector': (
            {'train_only_box_classifier': True, 'backbone_strategy': 'freeze',
             'init_checkpoint': '/ckpt'},
            "init_checkpoint_modules='all'"),
        'class balance needs counts': (
            {'class_balanced_loss': {'type': 'effective_number',
                                     'annotation_file': ''}},
            'needs task.class_balanced_loss.annotation_file'),
        'unknown loss': ({'class_balanced_loss': {'type': 'focal'}},
                         "type='focal'; accepted: none, effective_number"),
        'two sources of weights': (
            {'class_balanced_loss': {'type': 'inverse_frequency',
                                     'annotation_file': 'x.json'},
             'losses': {'class_weights': [1.0] * 41}},
            'both set class weights'),
        'no validation json': ({'annotation_file': ''},
                               'LVIS evaluation needs the LVIS-format JSON'),
        'unknown modules': (
            {'backbone_strategy': 'freeze', 'init_checkpoint': '/ckpt',
             'init_checkpoint_modules': 'decoder'},
            "init_checkpoint_modules='decoder' is not supported"),
    }
    for name, (override, message) in cases.items():
      params = exp_factory.get_exp_config(_LVIS)
      params.override({'task': override}, is_strict=True)
      with self.assertRaisesRegex(ValueError, message, msg=name):
        params.validate()

  def test_counts_must_match_the_head(self):
    params = _lvis_config()
    params.override({'task': {'class_balanced_loss': {
        'type': 'effective_number',
        'annotation_file': testing_utils.toy_data()['val_annotations']}}})
    with self.assertRaisesRegex(ValueError, 'has 3 categories, but '
                                'task.model.num_classes=41'):
      resolve.fill_derived(params)

  def test_weights_are_resolved_with_the_config_and_the_task_reads_no_file(
      self):
    directory = self.get_temp_dir()
    train = os.path.join(directory, 'train.json')
    with open(testing_utils.shapes_lvis_data()['train_annotations']) as f:
      ground_truth = json.load(f)
    with open(train, 'w') as f:
      json.dump(ground_truth, f)
    params = _lvis_config(stage2_checkpoint=directory)
    params.override({'task': {'class_balanced_loss': {
        'annotation_file': train}}})
    params.task.class_balanced_loss.resolved = False
    params.task.losses.class_weights = []
    resolve.fill_derived(params)
    balanced = params.task.class_balanced_loss
    self.assertTrue(balanced.resolved)
    counts = class_balanced.annotation_counts(train)
    self.assertEqual(params.task.losses.class_weights,
                     class_balanced.class_weights(counts, balanced.type,
                                                  balanced.beta))
    # params.yaml holds the weights; the task built from it (as export
    # builds one) needs the training JSON no more.
    os.remove(train)
    saved = os.path.join(directory, 'params.yaml')
    hyperparams.save_params_dict_to_yaml(params, saved)
    again = exp_factory.get_exp_config(_LVIS)
    again = hyperparams.override_params_dict(again, saved, is_strict=True)
    resolve.fill_derived(again)
    again.validate()
    task = testing_utils.build_task(again)
    self.assertEqual(task.task_config.losses.class_weights,
                     params.task.losses.class_weights)
    # A config that skipped resolution is refused, not read from disk.
    again.task.class_balanced_loss.resolved = False
    again.task.losses.class_weights = []
    with self.assertRaisesRegex(ValueError, "type='effective_number' becomes "
                                'task.losses.class_weights when the config is '
                                'resolved'):
      testing_utils.build_task(again)


def _values_by_path(model):
  """{checkpoint edge path: value} (Keras names differ between instances)."""
  return {path: variable.numpy() for path, variable in
          backbone_checkpoint.variables_by_path(model).values()}


def _slots(optimizer, variable):
  try:
    return [optimizer.get_slot(variable, name)
            for name in optimizer.get_slot_names()]
  except (KeyError, ValueError):
    return []


class LvisTrainCliTest(tf.test.TestCase):

  def _train(self, model_dir, *extra):
    data = testing_utils.shapes_lvis_data()
    overrides = ','.join([
        f'task.annotation_file={data["val_annotations"]}',
        f'task.train_data.input_path={data["train"]}',
        f'task.validation_data.input_path={data["val"]}',
        'trainer.validation_steps=20', *extra])
    command = [sys.executable, '-m', 'backbone_reuse.train',
               f'--experiment={_LVIS}', f'--config_file={_SMOKE}']
    if extra:
      command.append(f'--config_file={_STAGE2}')
    command += [f'--params_override={overrides}', '--mode=train_and_eval',
                f'--model_dir={model_dir}']
    result = subprocess.run(command, capture_output=True, text=True,
                            check=False, cwd=str(testing_utils.REPO))
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      return json.load(f)

  @pytest.mark.slow
  def test_stage_one_then_stage_two_report_lvis_metrics(self):
    stage1 = os.path.join(self.get_temp_dir(), 'stage1')
    metrics = self._train(stage1)
    self.assertEqual(metrics['step'], 6)
    for prefix in ('', 'mask_'):
      for name in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'APr', 'APc',
                   'APf'):
        value = metrics['metrics'][prefix + name]
        self.assertTrue(value == -1.0 or 0.0 <= value <= 1.0, name)
    stage2 = os.path.join(self.get_temp_dir(), 'stage2')
    data = testing_utils.shapes_lvis_data()
    metrics = self._train(
        stage2, f'task.init_checkpoint={stage1}',
        f'task.class_balanced_loss.annotation_file={data["train_annotations"]}',
        'trainer.train_steps=3')
    self.assertEqual(metrics['step'], 3)
    self.assertIn('mask_APr', metrics['metrics'])
    with open(os.path.join(stage2, 'parameters.json')) as f:
      counts = json.load(f)
    # 32-wide FC -> 41 classes: 32 * 41 + 41 trainable parameters.
    self.assertEqual(counts['trainable_params'], 32 * 41 + 41)
