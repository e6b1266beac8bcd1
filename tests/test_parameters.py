"""parameters.json (written by the training run) matches a direct count."""
import json
import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from backbone_reuse.analysis import parameters
from backbone_reuse.tools import count_parameters
import testing_utils


def _count(variables):
  return int(sum(np.prod(v.shape) for v in variables))


class ParametersTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      ('backbone_reuse_cascadercnn_coco', 'freeze'),
      ('backbone_reuse_maskrcnn_coco', 'finetune'),
      ('backbone_reuse_retinanet_coco', 'freeze'))
  def test_written_and_equal_to_direct_count(self, experiment, strategy):
    params = testing_utils.tiny_config(experiment, strategy, '/unused/ckpt')
    model_dir = self.get_temp_dir()
    model = testing_utils.build_task(params).build_model()
    parameters.log_and_write(model, model_dir)  # What the training run does.

    with open(os.path.join(model_dir, 'parameters.json')) as f:
      written = json.load(f)

    self.assertEqual(written['total_params'], _count(model.weights))
    self.assertEqual(written['trainable_params'],
                     _count(model.trainable_weights))
    self.assertAlmostEqual(
        written['trainable_percent'],
        100 * _count(model.trainable_weights) / _count(model.weights),
        places=2)
    modules = written['modules']
    self.assertEqual(sum(m['total'] for m in modules.values()),
                     written['total_params'])
    self.assertEqual(modules['backbone']['total'],
                     _count(model.backbone.weights))
    self.assertEqual(modules['decoder']['trainable'],
                     _count(model.decoder.trainable_weights))
    if strategy == 'freeze':
      self.assertEqual(modules['backbone']['trainable'], 0)
      self.assertEqual(
          written['trainable_params'],
          sum(m['trainable'] for name, m in modules.items()
              if name != 'backbone'))
    else:
      self.assertEqual(modules['backbone']['trainable'],
                       _count(model.backbone.trainable_weights))
    if experiment == 'backbone_reuse_cascadercnn_coco':
      self.assertLen(model.detection_head, 3)  # 0.5 plus cascade 0.7, 0.8.
      self.assertEqual(modules['detection_head']['total'],
                       sum(_count(h.weights) for h in model.detection_head))
    if experiment == 'backbone_reuse_maskrcnn_coco':
      self.assertGreater(modules['mask_head']['trainable'], 0)


  def test_count_experiment_matches_a_built_model(self):
    counts = count_parameters.count_experiment(
        'backbone_reuse_retinanet_coco', ['configs/smoke/retinanet_tiny.yaml'],
        'task.backbone_strategy=freeze,task.init_checkpoint=/unused/ckpt',
        root=str(testing_utils.REPO))
    params = testing_utils.tiny_config('backbone_reuse_retinanet_coco',
                                       'freeze', '/unused/ckpt')
    model = testing_utils.build_task(params).build_model()
    self.assertEqual(counts['total_params'], _count(model.weights))
    self.assertEqual(counts['trainable_params'],
                     _count(model.trainable_weights))
    self.assertEqual(counts['modules']['backbone']['trainable'], 0)


if __name__ == '__main__':
  tf.test.main()
