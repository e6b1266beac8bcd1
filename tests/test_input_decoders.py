"""One decoder builder for training and preflight, honouring decoder.type
and the TFDS name (dataloaders/decoders.py); with no hook enabled, our R-CNN
input (dataloaders/maskrcnn_input.build, which re-types the arguments of
Model Garden's parser) yields what Model Garden's own build_inputs yields."""
import os

from official.core import exp_factory
from official.vision.tasks import maskrcnn
from official.vision.dataloaders import tf_example_decoder
from official.vision.dataloaders import tf_example_label_map_decoder
import tensorflow as tf

import testing_utils
from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.dataloaders import coco_tfds
from backbone_reuse.dataloaders import decoders
from backbone_reuse.dataloaders import lvis_tfds
from backbone_reuse.dataloaders import maskrcnn_input


class DecodersTest(tf.test.TestCase):

  def _task(self):
    return exp_factory.get_exp_config('backbone_reuse_maskrcnn_coco').task

  def test_decoder_type_is_honoured(self):
    task = self._task()
    data = task.train_data
    plain = decoders.build(task.model, data)
    self.assertIsInstance(plain, tf_example_decoder.TfExampleDecoder)
    self.assertNotIsInstance(
        plain, tf_example_label_map_decoder.TfExampleDecoderLabelMap)
    label_map = os.path.join(self.get_temp_dir(), 'label_map.csv')
    with open(label_map, 'w') as f:
      f.write('7,kettle\n23,mug\n')
    data.decoder.type = 'label_map_decoder'
    data.decoder.label_map_decoder.label_map = label_map
    self.assertIsInstance(
        decoders.build(task.model, data),
        tf_example_label_map_decoder.TfExampleDecoderLabelMap)
    # The R-CNN input with sampling builds it too (it built the plain
    # decoder whatever decoder.type said).
    data.repeat_factor_sampling.threshold = 0.001
    self.assertTrue(maskrcnn_input.needed(data))

  def test_tfds_names(self):
    task = self._task()
    data = task.train_data
    data.tfds_name = 'lvis'
    self.assertIsInstance(decoders.build(task.model, data),
                          lvis_tfds.LvisTfdsDecoder)
    data.tfds_name = 'coco/2017:1.1.0'
    self.assertIsInstance(decoders.build(task.model, data),
                          coco_tfds.CocoTfdsDecoder)
    self.assertTrue(maskrcnn_input.needed(data))


class ModelGardensInputTest(tf.test.TestCase):
  """The pin for the parser call in maskrcnn_input.build: a Model Garden
  parser argument it stops passing, or passes from another field, changes a
  training batch (checked by hand: with the rpn_match_threshold argument
  dropped from the call, this test fails)."""

  def _first_batch(self, build, params):
    images, labels = next(iter(build(params)))
    flat = {'images': images}

    def walk(prefix, value):
      if isinstance(value, dict):
        for key, inner in value.items():
          walk(f'{prefix}/{key}', inner)
      else:
        flat[prefix] = value
    walk('labels', labels)
    return flat

  def test_training_batches_equal_model_gardens(self):
    params = testing_utils.tiny_config(
        'backbone_reuse_maskrcnn_coco',
        task_overrides={'model': {'include_mask': False}})
    data = params.task.train_data
    data.seed = 5  # One shuffle order for both.
    # No random op: no flip or scale jitter, and more RPN samples per image
    # than anchors, so the sampler keeps every anchor (random ops' seeds
    # depend on what ran before in the process). Values off Model Garden's
    # defaults, so that a dropped argument would show.
    data.parser.aug_rand_hflip = False
    data.parser.aug_scale_min = data.parser.aug_scale_max = 1.0
    data.parser.rpn_batch_size_per_im = 4096
    data.parser.rpn_match_threshold = 0.6
    data.parser.rpn_unmatched_threshold = 0.2
    data.parser.max_num_instances = 17
    self.assertFalse(maskrcnn_input.needed(data))
    task = testing_utils.build_task(params)
    theirs = self._first_batch(
        lambda d: maskrcnn.MaskRCNNTask.build_inputs(task, d), data)
    ours = self._first_batch(
        lambda d: maskrcnn_input.build(params.task, d), data)
    self.assertEqual(set(ours), set(theirs))
    self.assertIn('labels/rpn_score_targets/3', ours, msg=sorted(ours))
    for key, value in theirs.items():
      self.assertAllEqual(ours[key], value, msg=key)


if __name__ == '__main__':
  tf.test.main()
