"""experiments/shapes_pair_checks.py tells a frozen backbone from a trained
one, per kind of variable, from checkpoints alone."""
import importlib.util
import os

import tensorflow as tf
import tf_keras

_SCRIPT = os.path.join(os.path.dirname(__file__), '..', 'experiments',
                       'shapes_pair_checks.py')


def _script():
  spec = importlib.util.spec_from_file_location('shapes_pair_checks', _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _save(directory, backbone, with_slots=False):
  """A checkpoint laid out as a training run's: the model's backbone at
  `backbone/...`, optimizer slots beside the variables they train."""
  objects = {'backbone': backbone}
  if with_slots:
    # Model Garden's trainer's kind: slots saved under their variables.
    optimizer = tf_keras.optimizers.legacy.SGD(momentum=0.9)
    optimizer.apply_gradients(
        (tf.zeros_like(v), v) for v in backbone.trainable_variables)
    objects['optimizer'] = optimizer
  tf.train.Checkpoint(**objects).save(os.path.join(directory, 'ckpt'))


class PairChecksTest(tf.test.TestCase):

  def test_kinds_of_change_and_slots(self):
    checks = _script()
    backbone = tf_keras.Sequential([
        tf_keras.layers.Conv2D(4, 3, use_bias=False, input_shape=(8, 8, 3)),
        tf_keras.layers.BatchNormalization()])
    root = self.get_temp_dir()
    _save(os.path.join(root, 'upstream'), backbone, with_slots=True)
    _save(os.path.join(root, 'frozen'), backbone)
    change = checks.backbone_change(os.path.join(root, 'frozen'),
                                    os.path.join(root, 'upstream'))
    self.assertEqual(change['variables'], 5)
    self.assertEqual(change['slots'], 0)
    self.assertEqual(set(change['largest'].values()), {0.0})
    # Only the statistics move: a BatchNorm run in training mode.
    batch_norm = backbone.layers[1]
    batch_norm.moving_mean.assign_add(tf.fill([4], 0.5))
    _save(os.path.join(root, 'statistics'), backbone, with_slots=True)
    change = checks.backbone_change(os.path.join(root, 'statistics'),
                                    os.path.join(root, 'upstream'))
    self.assertAllClose(change['largest'], {
        'kernels': 0.0, 'BN scale, offset': 0.0, 'BN statistics': 0.5})
    self.assertGreater(change['slots'], 0)

  def test_config_differences_name_values_and_absent_fields(self):
    checks = _script()
    root = self.get_temp_dir()
    for name, text in (('a', 'task:\n  s: freeze\n  lr: 1\n'),
                       ('b', 'task:\n  s: finetune\n  lr: 1\n  ids: []\n')):
      os.makedirs(os.path.join(root, name), exist_ok=True)
      with open(os.path.join(root, name, 'params.yaml'), 'w') as f:
        f.write(text)
    self.assertEqual(
        checks.config_differences(os.path.join(root, 'a'),
                                  os.path.join(root, 'b')),
        ['task.ids (absent / [])', 'task.s (freeze / finetune)'])


if __name__ == '__main__':
  tf.test.main()
