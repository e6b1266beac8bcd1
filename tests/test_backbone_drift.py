"""How far a backbone moved from its checkpoint, per block group, and the
upstream top-1 under a transplanted backbone."""
import numpy as np
from official.vision.modeling.backbones import resnet
import tensorflow as tf
import tf_keras

from backbone_reuse.analysis import backbone_drift
from backbone_reuse.modeling import freezing


def _resnet():
  return resnet.ResNet(model_id=10, depth_multiplier=0.25,
                       input_specs=tf_keras.layers.InputSpec(
                           shape=[None, 32, 32, 3]))


def _kernel(layers):
  return next(w for layer in layers for w in layer.weights
              if 'kernel' in w.name)


class BackboneDriftTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    tf_keras.utils.set_random_seed(0)
    self.trained, self.upstream = _resnet(), _resnet()
    backbone_drift.copy_backbone(self.upstream, self.trained)

  def test_an_unmoved_backbone_is_at_distance_zero(self):
    distances = backbone_drift.relative_distances(self.trained, self.upstream)
    self.assertEqual(list(distances),
                     ['stem', 'group1', 'group2', 'group3', 'group4'])
    self.assertAllEqual(list(distances.values()), [0.0] * 5)

  def test_a_moved_group_and_only_it_has_its_relative_distance(self):
    group2 = freezing.resnet_stages(self.trained)[2]
    kernel = _kernel(group2)
    delta = np.full(kernel.shape, 0.01, np.float32)
    kernel.assign_add(delta)
    # Statistics are not weights: moving them moves no distance.
    for layer in freezing.resnet_stages(self.trained)[3]:
      for weight in layer.weights:
        if 'moving_mean' in weight.name:
          weight.assign_add(tf.ones_like(weight))
    reference = [w.numpy() for layer in
                 freezing.resnet_stages(self.upstream)[2]
                 for w in layer.weights if 'moving_' not in w.name]
    expected = np.sqrt(np.sum(delta.astype(np.float64) ** 2) / sum(
        np.sum(w.astype(np.float64) ** 2) for w in reference))
    distances = backbone_drift.relative_distances(self.trained, self.upstream)
    self.assertAllClose(distances['group2'], expected, rtol=1e-6)
    self.assertGreater(distances['group2'], 0)
    for name in ('stem', 'group1', 'group3', 'group4'):
      self.assertEqual(distances[name], 0.0, name)

  def test_weights_pair_by_path_whatever_is_frozen(self):
    # Keras lists trainable weights first: a frozen copy lists them in
    # another order, and must still pair each weight with its own.
    freezing.freeze_stages(self.trained, 2, None)
    _kernel(freezing.resnet_stages(self.trained)[4]).assign_add(
        tf.ones_like(_kernel(freezing.resnet_stages(self.trained)[4])))
    distances = backbone_drift.relative_distances(self.trained, self.upstream)
    self.assertGreater(distances['group4'], 0)
    self.assertEqual(distances['group1'], 0.0)

  def test_another_architecture_is_refused(self):
    other = resnet.ResNet(model_id=18, depth_multiplier=0.25,
                          input_specs=tf_keras.layers.InputSpec(
                              shape=[None, 32, 32, 3]))
    with self.assertRaisesRegex(ValueError, 'not the same architecture'):
      backbone_drift.relative_distances(other, self.upstream)

  def test_top1_counts_correct_predictions(self):
    logits = tf_keras.Sequential([tf_keras.layers.Lambda(lambda x: x)])
    batches = [
        (tf.constant([[0.9, 0.1], [0.2, 0.8]]), tf.constant([0, 0])),
        (tf.constant([[0.3, 0.7]]), tf.constant([[0.0, 1.0]])),  # one-hot
    ]
    self.assertAlmostEqual(backbone_drift.top1(logits, batches), 2 / 3)
    with self.assertRaisesRegex(ValueError, 'no validation batches'):
      backbone_drift.top1(logits, [])


if __name__ == '__main__':
  tf.test.main()
