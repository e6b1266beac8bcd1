"""backbone_strategy 'partial': the stem and the first k block groups frozen
exactly as with freeze, the later groups fine-tuned (real train steps)."""
import json
import os

from absl.testing import parameterized
from official.vision.modeling.backbones import efficientnet
import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse.analysis import parameters
from backbone_reuse.configs import strategies
from backbone_reuse.modeling import freezing

_EXPERIMENT = 'backbone_reuse_fasterrcnn_coco'
_STEPS = 3
_EFFICIENTNET = {'type': 'efficientnet', 'efficientnet': {'model_id': 'b0'}}


def _variables(layers):
  return [v for layer in layers for v in layer.weights]


class PartialFreezingTest(tf.test.TestCase, parameterized.TestCase):

  def _build(self, frozen_stages, logging_dir=None, backbone=None):
    model = {'model': {'backbone': backbone}} if backbone else {}
    probe = testing_utils.tiny_config(_EXPERIMENT, task_overrides=model)
    checkpoint, _ = testing_utils.write_classification_checkpoint(
        probe.task.model, self.get_temp_dir(), 'trainer')
    params = testing_utils.tiny_config(_EXPERIMENT, 'partial', checkpoint,
                                       {'frozen_stages': frozen_stages,
                                        **model})
    task = testing_utils.build_task(params)
    model = task.build_model()
    if logging_dir:
      parameters.log_and_write(model, logging_dir)  # As the training run.
    task.initialize(model)
    return params, task, model

  def test_stages_of_a_resnet(self):
    _, _, model = self._build(1)
    stages = freezing.resnet_stages(model.backbone)
    self.assertLen(stages, 5)
    # The stem: the tiny ResNet-18's plain Keras layers (stem_type v1: 3
    # convs, and replace_stem_max_pool: a strided conv for the max-pool,
    # each with its BN and activation); then 2 basic blocks per group.
    stem = [type(l).__name__ for l in stages[0]]
    self.assertEqual(stem.count('Conv2D'), 4, stem)
    self.assertLessEqual(set(stem), {'Conv2D', 'BatchNormalization',
                                     'Activation', 'MaxPooling2D'})
    for group in stages[1:]:
      self.assertEqual([type(l).__name__ for l in group],
                       ['ResidualBlock', 'ResidualBlock'])
    # Every backbone variable is in exactly one stage.
    found = [v.ref() for v in _variables(l for s in stages for l in s)]
    self.assertCountEqual(found, [v.ref() for v in model.backbone.weights])

  @pytest.mark.slow
  def test_stages_of_an_efficientnet(self):
    _, _, model = self._build(3, backbone=_EFFICIENTNET)
    stages = freezing.backbone_stages(model.backbone)
    self.assertLen(stages, 8)
    self.assertEqual([type(l).__name__ for l in stages[0]],
                     ['Conv2D', 'BatchNormalization', 'TFOpLambda'])
    # EfficientNet-B0's MBConv blocks per group; the final 1x1 conv (and
    # its norm and activation) goes with the last group.
    self.assertEqual(
        [sum(type(l).__name__ == 'InvertedBottleneckBlock' for l in group)
         for group in stages[1:]], [1, 2, 2, 3, 3, 4, 1])
    self.assertEqual([type(l).__name__ for l in stages[-1][1:]],
                     ['Conv2D', 'BatchNormalization', 'TFOpLambda'])
    found = [v.ref() for v in _variables(l for s in stages for l in s)]
    self.assertCountEqual(found, [v.ref() for v in model.backbone.weights])
    self.assertEqual(strategies.EFFICIENTNET_GROUPS,
                     len(efficientnet.EN_B0_BLOCK_SPECS))

  @parameterized.parameters((0, None), (2, None), (3, _EFFICIENTNET))
  @pytest.mark.slow
  def test_frozen_part_stays_and_the_rest_trains(self, frozen_stages,
                                                 backbone):
    params, task, model = self._build(frozen_stages, backbone=backbone)
    stages = freezing.backbone_stages(model.backbone)
    frozen = _variables(l for s in stages[:frozen_stages + 1] for l in s)
    trained = _variables(l for s in stages[frozen_stages + 1:] for l in s)
    self.assertNotEmpty(frozen)
    self.assertNotEmpty(trained)
    optimizer, _, before = testing_utils.train_steps(task, model, params,
                                                     _STEPS)
    trainable = {v.ref() for v in model.trainable_weights}
    slot_names = optimizer.get_slot_names()
    self.assertIn('momentum', slot_names)
    for variable in frozen:  # Weights and BN statistics, bit-identical.
      self.assertNotIn(variable.ref(), trainable, msg=variable.name)
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
      for name in slot_names:
        with self.assertRaises(KeyError, msg=variable.name):
          optimizer.get_slot(variable, name)
    kernels = [v for v in trained if 'kernel' in v.name]
    self.assertNotEmpty(kernels)
    # Model Garden's EfficientNet regularises its Conv2D kernels, not its
    # depthwise ones.
    regularised = [v for v in kernels if 'depthwise' not in v.name]
    for variable in kernels:  # Fine-tuned: every kernel moved, with slots.
      self.assertIn(variable.ref(), trainable, msg=variable.name)
      self.assertFalse((before[variable.ref()] == variable.numpy()).all(),
                       msg=variable.name)
      optimizer.get_slot(variable, 'momentum')
    # The trained groups' BatchNorms run in training mode: statistics move.
    stats = [v for v in trained if 'moving_mean' in v.name]
    self.assertTrue(any((before[v.ref()] != v.numpy()).any() for v in stats))
    # The L2 term covers the trained conv kernels only, with the task's
    # weight decay (halved, as tf.nn.l2_loss).
    decay = params.task.losses.l2_weight_decay / 2.0
    expected = sum(decay * float(tf.reduce_sum(tf.square(v)))
                   for v in regularised)
    self.assertLen(model.backbone.losses, len(regularised))
    self.assertAllClose(float(tf.add_n(model.backbone.losses)), expected,
                        rtol=1e-5)

  @pytest.mark.slow
  def test_all_groups_frozen_is_freeze(self):
    params, task, model = self._build(4)
    self.assertEmpty(model.backbone.trainable_weights)
    self.assertEmpty(model.backbone.losses)
    optimizer, _, before = testing_utils.train_steps(task, model, params,
                                                     _STEPS)
    testing_utils.assert_frozen(
        self, model, optimizer, before,
        testing_utils.DETECTOR_MODULES[_EXPERIMENT])

  def test_parameters_json_counts_the_frozen_part(self):
    logging_dir = self.get_temp_dir()
    _, _, model = self._build(2, logging_dir=logging_dir)
    with open(os.path.join(logging_dir, parameters.FILENAME)) as f:
      backbone = json.load(f)['modules']['backbone']
    stages = freezing.resnet_stages(model.backbone)
    trained = [v for l in (l for s in stages[3:] for l in s)
               for v in l.trainable_weights]
    self.assertEqual(backbone['trainable'],
                     sum(v.shape.num_elements() for v in trained))
    self.assertLess(0, backbone['trainable'])
    self.assertLess(backbone['trainable'], backbone['total'])

  @parameterized.named_parameters(
      ('too_many', 'partial', 5, None,
       r'task.frozen_stages=5 is out of range for a ResNet with 4 block '
       r"groups; accepted with backbone_strategy='partial': 0 \(the stem "
       r'only\) to 4'),
      ('unset', 'partial', -1, None, r'task.frozen_stages=-1 is out of range'),
      ('other_strategy', 'finetune', 2, None,
       r"task.frozen_stages=2 applies only to backbone_strategy='partial', "
       r"not 'finetune'"),
      ('efficientnet_too_many', 'partial', 8, {'type': 'efficientnet'},
       r'task.frozen_stages=8 is out of range for an EfficientNet with 7 '
       r"block groups; accepted with backbone_strategy='partial': 0 \(the "
       r'stem only\) to 7'),
      ('mobilenet', 'partial', 2, {'type': 'mobilenet'},
       r"task.model.backbone.type='mobilenet' has no stages for "
       r"backbone_strategy='partial' yet; accepted: 'resnet', "
       r"'efficientnet'"),
  )
  def test_refusals(self, strategy, frozen_stages, backbone, message):
    overrides = {'frozen_stages': frozen_stages}
    if backbone:
      overrides['model'] = {'backbone': backbone}
    with self.assertRaisesRegex(ValueError, message):
      testing_utils.tiny_config(_EXPERIMENT, strategy, '/c/ckpt', overrides)


if __name__ == '__main__':
  tf.test.main()
