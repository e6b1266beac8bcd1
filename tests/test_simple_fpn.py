"""ViTDet's simple feature pyramid (modeling/simple_fpn.py): levels derived
from the backbone's one level, shapes per level, and the configs that cannot
use it refused in one line (issue 37, item 1)."""
from official.vision.modeling import factory
from official.vision.modeling.backbones import vit
import tensorflow as tf
import tf_keras

import testing_utils
from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.configs import resolve
from backbone_reuse.modeling import simple_fpn


def _tiny_vit(size=64, patch=16):
  return vit.VisionTransformer(
      mlp_dim=64, num_heads=2, num_layers=1, patch_size=patch, hidden_size=32,
      input_specs=tf_keras.layers.InputSpec(shape=[None, size, size, 3]),
      pooler='none', output_2d_feature_maps=True,
      pos_embed_shape=(size // patch, size // patch))


class SimpleFPNTest(tf.test.TestCase):

  def test_each_level_from_a_stride_16_map(self):
    backbone = _tiny_vit()
    self.assertEqual(list(backbone.output_specs), ['4'])  # Stride 16.
    pyramid = simple_fpn.SimpleFPN(backbone.output_specs, min_level=2,
                                   max_level=6, num_filters=24)
    outputs = pyramid(backbone(tf.zeros([2, 64, 64, 3])))
    self.assertEqual({level: tuple(t.shape) for level, t in outputs.items()},
                     {'2': (2, 16, 16, 24), '3': (2, 8, 8, 24),
                      '4': (2, 4, 4, 24), '5': (2, 2, 2, 24),
                      '6': (2, 1, 1, 24)})
    self.assertEqual({k: tuple(v) for k, v in pyramid.output_specs.items()},
                     {k: (None,) + tuple(t.shape[1:])
                      for k, t in outputs.items()})
    # Stride 4: two transposed convolutions halving the 32 channels twice.
    self.assertEqual(
        [tuple(pyramid.get_layer(f'up_2_{step}').kernel.shape)
         for step in (0, 1)], [(2, 2, 16, 32), (2, 2, 8, 16)])
    self.assertEqual(pyramid.get_layer('up_3_0').kernel.shape,
                     (2, 2, 16, 32))
    # Level 6 pools level 5's map, which pooled the backbone's.
    self.assertEqual(pyramid.get_layer('pool_6').input.shape[1:3], (2, 2))

  def test_levels_follow_the_backbones_level(self):
    backbone = _tiny_vit(size=64, patch=8)  # One stride-8 level: '3'.
    pyramid = simple_fpn.SimpleFPN(backbone.output_specs, min_level=2,
                                   max_level=5, num_filters=8,
                                   norm='batch_norm')
    outputs = pyramid(backbone(tf.zeros([1, 64, 64, 3])))
    self.assertEqual({level: t.shape[1] for level, t in outputs.items()},
                     {'2': 16, '3': 8, '4': 4, '5': 2})
    self.assertNotIn('up_2_1', [layer.name for layer in pyramid.layers])

  def test_what_it_cannot_build_is_refused(self):
    specs = {'3': tf.TensorShape([None, 8, 8, 4]),
             '4': tf.TensorShape([None, 4, 4, 4])}
    with self.assertRaisesRegex(ValueError, r"one backbone level; the "
                                r"backbone gives levels \['3', '4'\]"):
      simple_fpn.SimpleFPN(specs)
    with self.assertRaisesRegex(ValueError, r"norm='group_norm'; accepted: "
                                r'layer_norm, batch_norm, none'):
      simple_fpn.SimpleFPN({'4': specs['4']}, norm='group_norm')

  def test_a_faster_rcnn_builds_on_it_and_its_gradients_flow(self):
    params = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    model_config = params.task.model
    model_config.decoder.type = 'simple_fpn'
    model_config.decoder.simple_fpn.num_filters = 16
    backbone = _tiny_vit(size=model_config.input_size[0])
    input_specs = tf_keras.layers.InputSpec(
        shape=[None] + list(model_config.input_size))
    model = factory.build_maskrcnn(input_specs, model_config,
                                   backbone=backbone)
    self.assertIsInstance(model.decoder, simple_fpn.SimpleFPN)
    images = tf.random.uniform([1] + list(model_config.input_size))
    with tf.GradientTape() as tape:
      features = model.decoder(model.backbone(images, training=True),
                               training=True)
      loss = tf.add_n([tf.reduce_mean(f) for f in features.values()])
    grads = tape.gradient(loss, model.backbone.trainable_variables)
    self.assertTrue(all(g is not None for g in grads))
    self.assertEqual(
        sorted(features, key=int),
        [str(l) for l in range(model_config.min_level,
                               model_config.max_level + 1)])


class ValidationTest(tf.test.TestCase):

  def _config(self, **model):
    return resolve.experiment_config(
        'backbone_reuse_fasterrcnn_coco', [],
        {'task': {'model': model}})

  def test_a_vit_with_a_multi_level_decoder_is_refused(self):
    with self.assertRaisesRegex(
        ValueError, r"^task.model.decoder.type='fpn' cannot serve a plain "
        r"ViT's single feature level; accepted with backbone 'vit': "
        r"'simple_fpn'\.$"):
      self._config(backbone={'type': 'vit',
                             'vit': {'output_2d_feature_maps': True}})
    with self.assertRaisesRegex(ValueError, r'output_2d_feature_maps=False'):
      self._config(backbone={'type': 'vit'},
                   decoder={'type': 'simple_fpn'})

  def test_simple_fpn_on_a_resnet_is_refused(self):
    with self.assertRaisesRegex(
        ValueError, r"decoder.type='simple_fpn' builds from a plain ViT's "
        r"one level; backbone 'resnet' gives several"):
      self._config(decoder={'type': 'simple_fpn'})

  def test_a_vit_with_simple_fpn_validates(self):
    params = self._config(
        backbone={'type': 'vit', 'vit': {'output_2d_feature_maps': True}},
        decoder={'type': 'simple_fpn', 'simple_fpn': {'norm': 'layer_norm'}})
    self.assertEqual(params.task.model.decoder.type, 'simple_fpn')


if __name__ == '__main__':
  tf.test.main()
