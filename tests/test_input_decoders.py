"""One decoder builder for training and preflight, honouring decoder.type
and the TFDS name (dataloaders/decoders.py)."""
import os

from official.core import exp_factory
from official.vision.dataloaders import tf_example_decoder
from official.vision.dataloaders import tf_example_label_map_decoder
import tensorflow as tf

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


if __name__ == '__main__':
  tf.test.main()
