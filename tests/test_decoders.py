"""NAS-FPN with bottleneck blocks: registered, built, trained one step."""
import numpy as np
from official.vision.modeling.layers import nn_blocks
import pytest
import tensorflow as tf
import tf_keras

import testing_utils
from backbone_reuse.modeling import decoders


def _config(decoder_type, **decoder):
  return testing_utils.tiny_config(
      'backbone_reuse_cascadercnn_coco',
      task_overrides={'model': {
          'max_level': 7, 'input_size': [128, 128, 3],
          'decoder': {'type': decoder_type, decoder_type: decoder}}})


def _count(layer, kind, kernel=None):
  return sum(isinstance(l, kind) and (kernel is None or l.kernel_size == kernel)
             for l in layer.layers)


class BottleneckNasfpnTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_nodes_are_bottleneck_blocks_and_a_step_trains(self):
    params = _config('bottleneck_nasfpn', num_filters=16, num_repeats=2,
                     block_repeats=2)
    task = testing_utils.build_task(params)
    model = task.build_model()
    decoder = model.decoder
    self.assertIsInstance(decoder, decoders.BottleneckNASFPN)
    # Model Garden's NAS-FPN cell has 7 nodes; 2 repeats x 2 blocks each.
    self.assertEqual(_count(decoder, nn_blocks.BottleneckBlock), 7 * 2 * 2)
    self.assertEqual(_count(decoder, tf_keras.layers.Conv2D, (3, 3)), 0)
    for level in range(3, 8):  # Bottleneck outputs: 4 x num_filters.
      self.assertEqual(decoder.output_specs[str(level)][-1], 64)
    _, metrics, before = testing_utils.train_steps(task, model, params, 1)
    losses = [float(m.result()) for m in metrics]
    self.assertTrue(np.isfinite(losses).all())
    moved = [v for v in decoder.trainable_variables
             if not np.array_equal(before[v.ref()], v.numpy())]
    self.assertNotEmpty(moved)

  @pytest.mark.slow
  def test_plain_nasfpn_keeps_its_3x3_convs(self):
    model = testing_utils.build_task(
        _config('nasfpn', num_filters=16, num_repeats=2)).build_model()
    self.assertEqual(_count(model.decoder, nn_blocks.BottleneckBlock), 0)
    self.assertEqual(_count(model.decoder, tf_keras.layers.Conv2D, (3, 3)),
                     7 * 2)

  @pytest.mark.slow
  def test_sum_combination_and_drop_connect(self):
    plain = testing_utils.build_task(_config(
        'bottleneck_nasfpn', num_filters=16, num_repeats=1)).build_model()
    # Model Garden's topology has four global-attention nodes.
    self.assertEqual(
        [s.combine_fn for s in plain.decoder._block_specs].count('attention'),  # pylint: disable=protected-access
        4)
    blocks = [l for l in plain.decoder.layers
              if isinstance(l, nn_blocks.BottleneckBlock)]
    self.assertTrue(all(not b.get_config()['stochastic_depth_drop_rate']
                        for b in blocks))
    ghiasi = testing_utils.build_task(_config(
        'bottleneck_nasfpn', num_filters=16, num_repeats=1,
        use_sum_for_combination=True, drop_connect_rate=0.2)).build_model()
    decoder = ghiasi.decoder
    self.assertEqual({s.combine_fn for s in decoder._block_specs}, {'sum'})  # pylint: disable=protected-access
    self.assertEqual([s.input_offsets for s in decoder._block_specs],  # pylint: disable=protected-access
                     [s.input_offsets for s in plain.decoder._block_specs])  # pylint: disable=protected-access
    blocks = [l for l in decoder.layers
              if isinstance(l, nn_blocks.BottleneckBlock)]
    self.assertLen(blocks, 7)
    self.assertEqual({b.get_config()['stochastic_depth_drop_rate']
                      for b in blocks}, {0.2})
    # Global attention has no weights of its own: sum changes no count.
    self.assertEqual(decoder.count_params(), plain.decoder.count_params())
    # Drop-connect makes training calls random (per example and block: 8
    # examples x 7 blocks), inference calls not.
    features = ghiasi.backbone(tf.random.normal([8, 128, 128, 3]))

    def outputs(training, layer=decoder):
      found = layer(features, training=training)
      return tf.concat([tf.reshape(found[str(l)], [-1]) for l in range(3, 8)],
                       0)
    self.assertNotAllClose(outputs(True), outputs(True))
    self.assertAllClose(outputs(False), outputs(False))
    # Without drop-connect, training calls repeat exactly.
    self.assertAllClose(outputs(True, plain.decoder),
                        outputs(True, plain.decoder))

  def test_refuses_zero_blocks(self):
    with self.assertRaisesRegex(ValueError, 'block_repeats=0; accepted'):
      testing_utils.build_task(_config(
          'bottleneck_nasfpn', num_filters=16, block_repeats=0)).build_model()
