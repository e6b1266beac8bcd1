"""Real train steps under each strategy: what trains, what stays bit-identical.

The freeze invariants: backbone weights and BatchNorm statistics unchanged,
no gradient, no optimizer slot, no L2 term; detector components train.
"""
from absl.testing import parameterized
import tensorflow as tf
import tf_keras

import testing_utils

_STEPS = 3
_DETECTOR_MODULES = {
    'backbone_reuse_fasterrcnn_coco': ('decoder', 'rpn_head',
                                       'detection_head'),
    'backbone_reuse_maskrcnn_coco': ('decoder', 'rpn_head', 'detection_head',
                                     'mask_head'),
    'backbone_reuse_cascadercnn_coco': ('decoder', 'rpn_head',
                                        'detection_head'),
    'backbone_reuse_retinanet_coco': ('decoder', 'head'),
}


def _module_variables(model, name, trainable_only=True):
  module = model.checkpoint_items[name]
  parts = module if isinstance(module, (list, tuple)) else [module]
  return [v for p in parts
          for v in (p.trainable_weights if trainable_only else p.weights)]


class StrategyTrainingTest(tf.test.TestCase, parameterized.TestCase):

  def _train(self, experiment, backbone_strategy, distribution=None):
    """Builds, initialises and trains a tiny model; returns what it saw."""
    distribution = distribution or tf.distribute.get_strategy()
    checkpoint = None
    if backbone_strategy != 'scratch':
      probe = testing_utils.tiny_config(experiment)
      checkpoint, _ = testing_utils.write_classification_checkpoint(
          probe.task.model, self.get_temp_dir(), 'trainer')
    params = testing_utils.tiny_config(experiment, backbone_strategy,
                                       checkpoint)
    with distribution.scope():
      task = testing_utils.build_task(params)
      model = task.build_model()
      task.initialize(model)
    optimizer, metrics, before = testing_utils.train_steps(
        task, model, params, _STEPS, distribution)
    return model, optimizer, before, metrics

  def _changed(self, variable, before):
    return not (before[variable.ref()] == variable.numpy()).all()

  def _assert_frozen(self, model, optimizer, before, detector_modules):
    backbone = model.backbone
    self.assertFalse(backbone.trainable)
    self.assertEmpty(backbone.trainable_weights)
    # Weights and BatchNorm moving statistics are bit-identical.
    stats = [v for v in backbone.weights if 'moving_' in v.name]
    self.assertNotEmpty(stats)
    for variable in backbone.weights:
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
    # No L2 term from frozen weights reaches the loss.
    self.assertEmpty(backbone.losses)
    self.assertNotEmpty(model.losses)
    # No optimizer slot for any backbone variable; one per trainable one.
    self.assertIsInstance(optimizer, tf_keras.optimizers.legacy.Optimizer)
    slot_names = optimizer.get_slot_names()
    self.assertIn('momentum', slot_names)
    for variable in backbone.weights:
      for name in slot_names:
        with self.assertRaises(KeyError, msg=variable.name):
          optimizer.get_slot(variable, name)
    for variable in model.trainable_weights:
      optimizer.get_slot(variable, 'momentum')
    # Detector components train: every kernel moves (a BatchNorm gamma may
    # not, at warm-up learning rates, by float32 rounding).
    for name in detector_modules:
      kernels = [v for v in _module_variables(model, name)
                 if 'kernel' in v.name]
      self.assertNotEmpty(kernels, msg=name)
      unchanged = [v.name for v in kernels if not self._changed(v, before)]
      self.assertEmpty(unchanged, msg=name)

  @parameterized.parameters(*_DETECTOR_MODULES)
  def test_freeze(self, experiment):
    model, optimizer, before, metrics = self._train(experiment, 'freeze')
    self._assert_frozen(model, optimizer, before,
                        _DETECTOR_MODULES[experiment])
    losses = {m.name: m.result().numpy() for m in metrics}
    self.assertTrue(all(tf.math.is_finite(v) for v in losses.values()),
                    msg=losses)

  def test_frozen_backbone_runs_in_inference_mode(self):
    model, _, _, _ = self._train('backbone_reuse_fasterrcnn_coco', 'freeze')
    images = tf.random.uniform([2, 64, 64, 3])
    as_training = model.backbone(images, training=True)
    as_inference = model.backbone(images, training=False)
    for level in as_inference:
      self.assertAllEqual(as_training[level], as_inference[level])

  @parameterized.parameters('finetune', 'scratch')
  def test_backbone_trains(self, backbone_strategy):
    model, _, before, _ = self._train('backbone_reuse_fasterrcnn_coco',
                                      backbone_strategy)
    backbone = model.backbone
    self.assertTrue(backbone.trainable)
    self.assertNotEmpty(backbone.losses)
    kernels = [v for v in backbone.trainable_weights if 'kernel' in v.name]
    changed = [v for v in kernels if self._changed(v, before)]
    self.assertLen(changed, len(kernels))
    stats = [v for v in backbone.weights if 'moving_mean' in v.name]
    self.assertTrue(any(self._changed(v, before) for v in stats))

  def test_freeze_under_mirrored_strategy(self):
    devices = [d.name for d in tf.config.list_logical_devices('CPU')]
    self.assertLen(devices, 2)
    distribution = tf.distribute.MirroredStrategy(devices)
    self.assertEqual(distribution.num_replicas_in_sync, 2)
    model, optimizer, before, _ = self._train(
        'backbone_reuse_fasterrcnn_coco', 'freeze', distribution)
    self._assert_frozen(model, optimizer, before,
                        _DETECTOR_MODULES['backbone_reuse_fasterrcnn_coco'])


if __name__ == '__main__':
  tf.test.main()
