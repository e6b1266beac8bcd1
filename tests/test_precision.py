"""bfloat16 training on the CPU: every task family trains a few real steps
under `mixed_bfloat16`, the freeze invariants hold there too, and an
exported bfloat16-trained detector serves float32 outputs.

TensorFlow emulates bfloat16 where the CPU lacks the instructions, so these
tests run on any CPU.
"""
import os

from absl.testing import parameterized
from official.core import exp_factory
from official.core import task_factory
from official.modeling import performance
from official.vision.modeling.layers import roi_generator
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import testing_utils
from backbone_reuse import serving
from backbone_reuse.modeling import precision
from backbone_reuse.shapes import world

_BATCHED_NMS = {'model': {'roi_generator': {'use_batched_nms': True},
                          'detection_generator': {'nms_version': 'batched'}}}


class _Bfloat16TestCase(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    performance.set_mixed_precision_policy('bfloat16')
    self.addCleanup(tf_keras.mixed_precision.set_global_policy, 'float32')


class DetectorsTrainInBfloat16Test(_Bfloat16TestCase, parameterized.TestCase):

  def _train(self, experiment, strategy, overrides=None, steps=3):
    checkpoint = None
    if strategy != 'scratch':
      probe = testing_utils.tiny_config(experiment)
      checkpoint, _ = testing_utils.write_classification_checkpoint(
          probe.task.model, self.get_temp_dir(), 'trainer')
    params = testing_utils.tiny_config(experiment, strategy, checkpoint,
                                       overrides)
    task = testing_utils.build_task(params)
    model = task.build_model()
    task.initialize(model)
    optimizer, metrics, before = testing_utils.train_steps(
        task, model, params, steps)
    losses = {m.name: float(m.result()) for m in metrics}
    self.assertTrue(all(np.isfinite(v) for v in losses.values()), losses)
    self.assertGreater(losses['total_loss'], 0)
    return model, optimizer, before

  @parameterized.named_parameters(
      ('faster_batched_nms', 'backbone_reuse_fasterrcnn_coco', _BATCHED_NMS),
      ('faster', 'backbone_reuse_fasterrcnn_coco', None),
      ('cascade_batched_nms', 'backbone_reuse_cascadercnn_coco', _BATCHED_NMS),
      ('mask', 'backbone_reuse_maskrcnn_coco', None),
      ('retinanet', 'backbone_reuse_retinanet_coco', None),
      ('retinanet_batched_nms', 'backbone_reuse_retinanet_coco',
       {'model': {'detection_generator': {'nms_version': 'batched'}}}),
  )
  @pytest.mark.slow
  def test_freeze(self, experiment, overrides):
    model, optimizer, before = self._train(experiment, 'freeze', overrides)
    # The layers compute in bfloat16 and keep float32 variables.
    self.assertEqual(model.backbone.compute_dtype, 'bfloat16')
    testing_utils.assert_frozen(self, model, optimizer, before,
                                testing_utils.DETECTOR_MODULES[experiment])

  @pytest.mark.slow
  def test_adapters_train_and_the_base_stays(self):
    model, _, before = self._train(
        'backbone_reuse_fasterrcnn_coco', 'adapters',
        {'adapters': {'reduction': 2}, **_BATCHED_NMS})
    adapter = [v for v in model.backbone.weights if 'adapter' in v.name]
    base = [v for v in model.backbone.weights if 'adapter' not in v.name]
    self.assertNotEmpty(adapter)
    for variable in base:
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
    kernels = [v for v in adapter if 'kernel' in v.name]
    moved = [v for v in kernels
             if not np.array_equal(before[v.ref()], v.numpy())]
    self.assertLen(moved, len(kernels))
    for variable in model.backbone.weights:
      self.assertEqual(variable.dtype, tf.float32, msg=variable.name)

  @pytest.mark.slow
  def test_stage_two_trains_only_the_box_classifiers(self):
    probe = testing_utils.tiny_config('backbone_reuse_cascadercnn_coco')
    model = task_factory.get_task(probe.task).build_model()
    directory = os.path.join(self.get_temp_dir(), 'stage1')
    tf.train.Checkpoint(model=model).save(os.path.join(directory, 'ckpt'))
    params = testing_utils.tiny_config(
        'backbone_reuse_cascadercnn_coco', 'finetune', directory,
        task_overrides={'init_checkpoint_modules': 'all',
                        'train_only_box_classifier': True, **_BATCHED_NMS})
    task = testing_utils.build_task(params)
    model = task.build_model()
    task.initialize(model)
    trained = {v.ref() for v in model.trainable_variables}
    self.assertNotEmpty(trained)
    _, _, before = testing_utils.train_steps(task, model, params, 3)
    for variable in model.weights:
      changed = not np.array_equal(before[variable.ref()], variable.numpy())
      self.assertEqual(changed, variable.ref() in trained, variable.name)

  def test_nms_layers_compute_in_float32(self):
    params = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco',
                                       task_overrides=_BATCHED_NMS)
    model = testing_utils.build_task(params).build_model()
    # Model Garden keeps them as these attributes (the swap relies on it).
    self.assertIsInstance(model.roi_generator, precision.Float32ROIGenerator)
    self.assertIsInstance(model.detection_generator,
                          precision.Float32DetectionGenerator)
    self.assertEqual(model.roi_generator.compute_dtype, 'float32')
    self.assertTrue(model.roi_generator.get_config()['use_batched_nms'])
    outputs = model(tf.random.uniform([2, 64, 64, 3]),
                    image_shape=tf.constant([[64., 64.]] * 2),
                    training=False)
    self.assertEqual(outputs['detection_boxes'].dtype, tf.float32)

  def test_retinanet_generator_computes_in_float32(self):
    params = testing_utils.tiny_config(
        'backbone_reuse_retinanet_coco',
        task_overrides={'model': {'detection_generator': {
            'nms_version': 'batched'}}})
    model = testing_utils.build_task(params).build_model()
    self.assertIsInstance(model.detection_generator,
                          precision.Float32MultilevelDetectionGenerator)
    self.assertEqual(model.detection_generator.get_config()['nms_version'],
                     'batched')


  def test_other_nms_versions_stay_model_gardens(self):
    params = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    self.assertFalse(params.task.model.roi_generator.use_batched_nms)
    model = testing_utils.build_task(params).build_model()
    self.assertIs(type(model.roi_generator),
                  roi_generator.MultilevelROIGenerator)


class Float32IsUntouchedTest(tf.test.TestCase):

  def test_no_swap_under_float32(self):
    params = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco',
                                       task_overrides=_BATCHED_NMS)
    model = testing_utils.build_task(params).build_model()
    self.assertIs(type(model.roi_generator),
                  roi_generator.MultilevelROIGenerator)


class ClassificationTrainsInBfloat16Test(_Bfloat16TestCase):

  def test_shapes_upstream_trains(self):
    data = os.path.join(self.get_temp_dir(), 'upstream')
    world.write_classification_tfrecords(os.path.join(data, 'train'), 64,
                                         seed=3)
    params = exp_factory.get_exp_config('shapes_classification')
    params.override({
        'task': {'train_data': {'input_path': os.path.join(data, 'train-*'),
                                'global_batch_size': 8},
                 'model': {'backbone': {'resnet': {
                     'depth_multiplier': 0.25}}}},
        'runtime': {'mixed_precision_dtype': 'bfloat16'}}, is_strict=True)
    task = task_factory.get_task(params.task)
    model = task.build_model()
    optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                      params.runtime)
    metrics = task.build_metrics(training=True)
    iterator = iter(task.build_inputs(params.task.train_data))
    before = {v.ref(): v.numpy() for v in model.trainable_weights}

    @tf.function
    def step(inputs):
      return task.train_step(inputs, model, optimizer, metrics=metrics)

    for _ in range(3):
      logs = step(next(iterator))
    self.assertTrue(np.isfinite(float(logs['loss'])))
    self.assertEqual(model.compute_dtype, 'bfloat16')
    moved = [v for v in model.trainable_weights if 'kernel' in v.name
             and not np.array_equal(before[v.ref()], v.numpy())]
    self.assertNotEmpty(moved)
    for variable in model.weights:
      self.assertEqual(variable.dtype, tf.float32, msg=variable.name)


class ChooseTest(tf.test.TestCase):

  def test_auto_follows_the_hardware(self):
    self.assertEqual(
        precision.choose('auto', flags=('avx2', 'amx_bf16'), gpus=[]),
        ('bfloat16', 'auto: the CPU reports amx_bf16'))
    self.assertEqual(
        precision.choose('auto', flags=('avx512_bf16',), gpus=[])[0],
        'bfloat16')
    self.assertEqual(
        precision.choose('auto', flags=('avx2', 'avx512f'), gpus=[]),
        ('float32', 'auto: the CPU reports none of amx_bf16, avx512_bf16'))
    self.assertEqual(
        precision.choose('auto', flags=(), gpus=['/physical_device:GPU:0']),
        ('bfloat16', 'auto: /physical_device:GPU:0 support bfloat16'))

  def test_explicit_choices_are_kept(self):
    self.assertEqual(precision.choose('float32', flags=('amx_bf16',),
                                      gpus=[])[0], 'float32')
    self.assertEqual(precision.choose('bfloat16', flags=(), gpus=[])[0],
                     'bfloat16')

  def test_refuses_an_unknown_precision(self):
    with self.assertRaisesRegex(ValueError, "--precision='fp16'; accepted: "
                                'auto, float32, bfloat16'):
      precision.choose('fp16')

  def test_reads_the_cpu_flags(self):
    path = os.path.join(self.get_temp_dir(), 'cpuinfo')
    with open(path, 'w') as f:
      f.write('processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16 sse\n')
    self.assertEqual(precision.cpu_flags(path),
                     ('amx_bf16', 'avx512_bf16', 'fpu', 'sse'))
    self.assertEqual(precision.cpu_flags(path + '.missing'), ())


class ExportOfABfloat16DetectorTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_serves_float32(self):
    directory = self.get_temp_dir()
    performance.set_mixed_precision_policy('bfloat16')
    try:
      params, _, _, model_dir = testing_utils.trained_model_dir(
          directory, 'backbone_reuse_fasterrcnn_coco', 'freeze',
          {**_BATCHED_NMS})
    finally:
      tf_keras.mixed_precision.set_global_policy('float32')
    params.override({'runtime': {'mixed_precision_dtype': 'bfloat16'}})
    export_dir = os.path.join(directory, 'export')
    serving.export(params, model_dir, export_dir)
    served = tf.saved_model.load(export_dir).signatures['serving_default']
    outputs = served(tf.zeros([1, 64, 64, 3], tf.uint8))
    for key in ('detection_boxes', 'detection_scores'):
      self.assertEqual(outputs[key].dtype, tf.float32, msg=key)
    self.assertTrue(np.isfinite(outputs['detection_scores'].numpy()).all())


if __name__ == '__main__':
  tf.test.main()
