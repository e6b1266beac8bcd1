"""Real train steps under each strategy: what trains, what stays bit-identical.

The freeze invariants: backbone weights and BatchNorm statistics unchanged,
no gradient, no optimizer slot, no L2 term; detector components train.
"""
from absl.testing import parameterized
import pytest
import tensorflow as tf

import testing_utils

_STEPS = 3
_DETECTOR_MODULES = testing_utils.DETECTOR_MODULES


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
    testing_utils.assert_frozen(self, model, optimizer, before,
                                detector_modules)

  @parameterized.parameters(*_DETECTOR_MODULES)
  @pytest.mark.slow
  def test_freeze(self, experiment):
    model, optimizer, before, metrics = self._train(experiment, 'freeze')
    self._assert_frozen(model, optimizer, before,
                        _DETECTOR_MODULES[experiment])
    losses = {m.name: m.result().numpy() for m in metrics}
    self.assertTrue(all(tf.math.is_finite(v) for v in losses.values()),
                    msg=losses)

  @pytest.mark.slow
  def test_frozen_backbone_runs_in_inference_mode(self):
    model, _, _, _ = self._train('backbone_reuse_fasterrcnn_coco', 'freeze')
    images = tf.random.uniform([2, 64, 64, 3])
    as_training = model.backbone(images, training=True)
    as_inference = model.backbone(images, training=False)
    for level in as_inference:
      self.assertAllEqual(as_training[level], as_inference[level])

  @parameterized.parameters('finetune', 'scratch')
  @pytest.mark.slow
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

  @pytest.mark.slow
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
