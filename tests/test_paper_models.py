"""Table 4's EfficientNet-B7 models build from the committed YAMLs."""
import json
import os

from official.core import task_factory
from official.vision.modeling.backbones import factory as backbone_factory
import tensorflow as tf
import pytest
import tf_keras

import testing_utils
from backbone_reuse.analysis import parameters
from backbone_reuse.configs import resolve
from backbone_reuse.modeling import decoders


class EfficientNetB7Test(tf.test.TestCase):

  @pytest.mark.slow  # Builds B7 at 256 px: 80-230 s.
  def test_cascade_b7_bottleneck_nasfpn_builds_and_is_counted(self):
    # The paper's 1280 px; the parameter count does not depend on it, so the
    # test builds at 256 px.
    params = resolve.experiment_config(
        'backbone_reuse_cascadercnn_coco',
        ['configs/coco/cascade_maskrcnn_effb7_nasfpn.yaml',
         'configs/schedules/copy_paste_180k.yaml',
         'configs/augmentation/copy_paste.yaml',
         'configs/strategies/freeze.yaml'],
        {'task': {'init_checkpoint': 'unused',
                  'model': {'input_size': [256, 256, 3]}}},
        root=str(testing_utils.REPO))
    self.assertTrue(params.task.train_data.parser.copy_paste.enabled)
    logging_dir = self.get_temp_dir()
    model = task_factory.get_task(params.task).build_model()
    parameters.log_and_write(model, logging_dir)  # As the training run.
    self.assertIsInstance(model.decoder, decoders.BottleneckNASFPN)
    self.assertLen(model.detection_head, 3)  # Cascade: 3 box heads.
    with open(os.path.join(logging_dir, 'parameters.json')) as f:
      counts = json.load(f)
    self.assertEqual(counts['total_params'], model.count_params())
    self.assertEqual(counts['modules']['backbone']['trainable'], 0)
    # Ghiasi et al.'s activations: swish in the backbone and NAS-FPN, ReLU
    # in the heads.
    self.assertEqual(
        [part.get_config()['activation'] for part in
         (model.backbone, model.decoder, model.rpn_head,
          model.detection_head[0], model.mask_head)],
        ['swish', 'swish', 'relu', 'relu', 'relu'])
    b7 = backbone_factory.build_backbone(
        input_specs=tf_keras.layers.InputSpec(shape=[None, 256, 256, 3]),
        backbone_config=params.task.model.backbone,
        norm_activation_config=params.task.model.norm_activation.replace(
            activation=params.task.model.backbone_activation))
    self.assertEqual(counts['modules']['backbone']['total'],
                     b7.count_params())
