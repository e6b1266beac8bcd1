"""Residual adapters on the frozen backbone: exact start, what trains, restore."""
import json
import os

from absl.testing import parameterized
import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse.analysis import parameters
from backbone_reuse.modeling import adapters
from backbone_reuse.modeling import backbone_checkpoint

_EXPERIMENT = 'backbone_reuse_fasterrcnn_coco'
_STEPS = 3


def _assert_base_restored(test, model, classifier):
  """Every base (non-adapter) variable of the model's backbone has the plain
  backbone's checkpoint path and the classifier's value."""
  adapter_ids = {id(v) for v in adapters.adapter_variables(model.backbone)}
  ours = {path: v for key, (path, v) in
          backbone_checkpoint.variables_by_path(model.backbone).items()
          if key not in adapter_ids}
  theirs = {path: v for path, v in
            backbone_checkpoint.variables_by_path(
                classifier.backbone).values()}
  test.assertEqual(set(ours), set(theirs))
  for path, variable in ours.items():
    test.assertAllEqual(variable.numpy(), theirs[path].numpy(), msg=path)


class AdaptersTest(tf.test.TestCase, parameterized.TestCase):

  def _checkpoint(self):
    probe = testing_utils.tiny_config(_EXPERIMENT)
    return testing_utils.write_classification_checkpoint(
        probe.task.model, self.get_temp_dir(), 'trainer')

  def _model(self, strategy, checkpoint, kind='series', logging_dir=None,
             **adapter_fields):
    overrides = ({'adapters': dict(type=kind, **adapter_fields)}
                 if strategy == 'adapters' else None)
    params = testing_utils.tiny_config(_EXPERIMENT, strategy, checkpoint,
                                       overrides)
    # A constant, larger learning rate than the smoke schedule's warm-up: a
    # zero-initialised adapter gives its BN gamma no gradient at step 1 and a
    # tiny one after, which at lr 0.007 rounds away against gamma = 1.0.
    params.override({'trainer': {'optimizer_config': {
        'learning_rate': {'type': 'constant',
                          'constant': {'learning_rate': 0.1}},
        'warmup': {'type': None}}}}, is_strict=True)
    task = testing_utils.build_task(params)
    model = task.build_model()
    if logging_dir:
      parameters.log_and_write(model, logging_dir)  # As the training run.
    task.initialize(model)
    return params, task, model

  @parameterized.parameters('series', 'parallel')
  @pytest.mark.slow
  def test_zero_init_computes_the_frozen_backbone(self, kind):
    checkpoint, _ = self._checkpoint()
    _, _, frozen = self._model('freeze', checkpoint)
    _, _, adapted = self._model('adapters', checkpoint, kind)
    self.assertNotEmpty(adapters.adapters_of(adapted.backbone))
    images = tf.random.uniform([2, 64, 64, 3])
    for training in (False, True):
      expected = frozen.backbone(images, training=training)
      actual = adapted.backbone(images, training=training)
      for level in expected:
        self.assertAllEqual(expected[level], actual[level])

  @pytest.mark.slow
  def test_he_init_changes_the_function(self):
    checkpoint, _ = self._checkpoint()
    _, _, frozen = self._model('freeze', checkpoint)
    _, _, adapted = self._model('adapters', checkpoint, 'parallel',
                                zero_init=False)
    images = tf.random.uniform([2, 64, 64, 3])
    self.assertNotAllClose(frozen.backbone(images)['5'],
                           adapted.backbone(images)['5'])

  @pytest.mark.slow
  def test_learning_rate_multiplier_scales_only_the_adapter_kernels(self):
    # Same adapter weights (He init, so the kernels get a gradient through
    # a non-zero path), multiplier 1 vs 0.25: the forward pass is the same
    # and each adapter kernel's gradient is exactly a quarter.
    checkpoint, _ = self._checkpoint()
    _, _, plain = self._model('adapters', checkpoint, zero_init=False)
    _, _, scaled = self._model('adapters', checkpoint, zero_init=False,
                               learning_rate_multiplier=0.25)
    for a, b in zip(adapters.adapter_variables(plain.backbone),
                    adapters.adapter_variables(scaled.backbone)):
      b.assign(a)
    images = tf.random.uniform([2, 64, 64, 3])
    gradients = []
    for model in (plain, scaled):
      variables = [v for v in adapters.adapter_variables(model.backbone)
                   if v.trainable]
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(
            model.backbone(images, training=True)['5']))
      gradients.append((loss, [v.name for v in variables],
                        tape.gradient(loss, variables)))
    (loss_plain, names, plain_grads), (loss_scaled, _, scaled_grads) = (
        gradients)
    self.assertEqual(float(loss_plain), float(loss_scaled))
    kernels = [n for n in names if 'kernel' in n]
    self.assertNotEmpty(kernels)
    self.assertLess(len(kernels), len(names))  # BN gamma/beta too.
    for name, grad, scaled_grad in zip(names, plain_grads, scaled_grads):
      factor = 0.25 if name in kernels else 1.0
      self.assertAllClose(grad * factor, scaled_grad, rtol=1e-6, atol=0,
                          msg=name)
      self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0)

  @pytest.mark.slow
  def test_placement(self):
    checkpoint, _ = self._checkpoint()
    # ResNet-18: 4 groups x 2 basic blocks x 2 3x3 convs.
    _, _, model = self._model('adapters', checkpoint)
    self.assertLen(adapters.adapters_of(model.backbone), 16)
    _, _, model = self._model('adapters', checkpoint, levels=[4, 5],
                              reduction=4)
    found = adapters.adapters_of(model.backbone)
    self.assertLen(found, 8)
    # Low rank: C -> C/4 -> C, two 1x1 kernels each.
    kernels = [w for a in found for w in a.weights if 'kernel' in w.name]
    self.assertLen(kernels, 16)
    self.assertEqual(kernels[0].shape[-1] * 4, kernels[1].shape[-1])

  def _train(self, kind, distribution=None, zero_init=True):
    distribution = distribution or tf.distribute.get_strategy()
    checkpoint, _ = self._checkpoint()
    with distribution.scope():
      params, task, model = self._model('adapters', checkpoint, kind,
                                        zero_init=zero_init)
    optimizer, _, before = testing_utils.train_steps(
        task, model, params, _STEPS, distribution)
    return model, optimizer, before

  def _assert_only_adapters_train(self, model, optimizer, before,
                                  may_stay=None):
    backbone = model.backbone
    adapter_refs = {v.ref() for v in adapters.adapter_variables(backbone)}
    base = [v for v in backbone.weights if v.ref() not in adapter_refs]
    self.assertNotEmpty(adapter_refs)
    self.assertNotEmpty([v for v in base if 'moving_' in v.name])
    for variable in base:
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
      for name in optimizer.get_slot_names():
        with self.assertRaises(KeyError, msg=variable.name):
          optimizer.get_slot(variable, name)
    unchanged = [v.name for v in adapters.adapter_variables(backbone)
                 if (before[v.ref()] == v.numpy()).all()]
    if may_stay:
      unchanged = [n for n in unchanged if may_stay not in n]
    self.assertEmpty(unchanged)
    self.assertEqual({v.ref() for v in backbone.trainable_weights},
                     {v.ref() for v in adapters.adapter_variables(backbone)
                      if v.trainable and 'moving_' not in v.name})
    # Only the adapters' weight decay reaches the loss from the backbone.
    self.assertLen(backbone.losses, len(
        [v for v in backbone.trainable_weights if 'kernel' in v.name]))

  @parameterized.parameters(('series', False), ('parallel', True))
  @pytest.mark.slow
  def test_only_adapters_train(self, kind, zero_init):
    model, optimizer, before = self._train(kind, zero_init=zero_init)
    self._assert_only_adapters_train(model, optimizer, before)

  @pytest.mark.slow
  def test_zero_init_series_adapters_train(self):
    # With W = 0 at step 1 the BN gamma before it gets no gradient, and a
    # tiny one after (product of two small terms); 3 steps may not move it
    # past float32 rounding of 1.0. Everything else must move.
    model, optimizer, before = self._train('series', zero_init=True)
    self._assert_only_adapters_train(model, optimizer, before,
                                     may_stay='/gamma')

  @pytest.mark.slow
  def test_adapter_batchnorms_train_while_base_statistics_stay(self):
    # A candidate cause of adapters losing to freezing (issue 22): adapter
    # BatchNorms stuck in inference mode, like the frozen base's.
    model, _, before = self._train('series', zero_init=False)
    adapter_refs = {v.ref() for v in adapters.adapter_variables(
        model.backbone)}
    statistics = [v for v in model.backbone.weights if 'moving_' in v.name]
    adapter_stats = [v for v in statistics if v.ref() in adapter_refs]
    base_stats = [v for v in statistics if v.ref() not in adapter_refs]
    self.assertNotEmpty(adapter_stats)
    self.assertNotEmpty(base_stats)
    for variable in adapter_stats:  # Updated by training-mode BatchNorm.
      self.assertNotAllClose(before[variable.ref()], variable.numpy(),
                             msg=variable.name)
    for variable in base_stats:
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
    # And in a training call an adapter BN normalises with batch statistics.
    norm = adapters.adapters_of(model.backbone)[0]._norm  # pylint: disable=protected-access
    x = tf.random.normal([2, 4, 4, norm.gamma.shape[0]], mean=3.0)
    self.assertNotAllClose(norm(x, training=True), norm(x, training=False))

  @pytest.mark.slow
  def test_only_adapters_train_under_mirrored_strategy(self):
    devices = [d.name for d in tf.config.list_logical_devices('CPU')]
    # Not the default collective all-reduce: collective instance keys of two
    # MirroredStrategy objects in one process collide (TF issue), which
    # breaks test_strategy_training's mirrored test run after this one.
    distribution = tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    self.assertEqual(distribution.num_replicas_in_sync, 2)
    model, optimizer, before = self._train('parallel', distribution)
    self._assert_only_adapters_train(model, optimizer, before)

  @pytest.mark.slow
  def test_classification_checkpoint_restores_every_base_variable(self):
    checkpoint, classifier = self._checkpoint()
    _, _, model = self._model('adapters', checkpoint)
    # Base variables keep the plain backbone's checkpoint paths.
    _assert_base_restored(self, model, classifier)

  def test_missing_base_variable_fails(self):
    other = testing_utils.tiny_config(_EXPERIMENT)
    other.task.model.backbone.resnet.model_id = 10  # Fewer blocks than R-18.
    checkpoint, _ = testing_utils.write_classification_checkpoint(
        other.task.model, self.get_temp_dir(), 'root')
    params = testing_utils.tiny_config(_EXPERIMENT, 'adapters', checkpoint)
    task = testing_utils.build_task(params)
    model = task.build_model()
    with self.assertRaises(backbone_checkpoint.BackboneCheckpointError) as e:
      task.initialize(model)
    message = str(e.exception)
    self.assertRegex(message, r'cannot initialise \d+ backbone variable')
    self.assertNotIn('adapter', message)

  @pytest.mark.slow
  def test_parameters_json_lists_adapters(self):
    checkpoint, _ = self._checkpoint()
    logging_dir = self.get_temp_dir()
    _, _, model = self._model('adapters', checkpoint, 'parallel',
                              logging_dir=logging_dir)
    with open(os.path.join(logging_dir, parameters.FILENAME)) as f:
      counts = json.load(f)
    modules = counts['modules']
    adapter_count = sum(v.shape.num_elements() for v in
                        adapters.adapter_variables(model.backbone))
    self.assertEqual(modules['adapters']['total'], adapter_count)
    self.assertEqual(modules['backbone']['trainable'], 0)
    detector = sum(modules[m]['trainable'] for m in
                   ('decoder', 'rpn_head', 'detection_head'))
    self.assertEqual(counts['trainable_params'],
                     detector + modules['adapters']['trainable'])
    self.assertEqual(counts['trainable_params'], sum(
        v.shape.num_elements() for v in model.trainable_weights))

  @parameterized.named_parameters(
      ('type', {'adapters': {'type': 'serial'}},
       r"task.adapters.type='serial' is not supported; accepted: series, "
       'parallel'),
      ('levels', {'adapters': {'levels': [1, 6]}},
       r'task.adapters.levels=\[1, 6\] names levels \[1, 6\]'),
      ('learning_rate_multiplier',
       {'adapters': {'learning_rate_multiplier': 0.0}},
       r'task.adapters.learning_rate_multiplier=0.0; accepted: a positive'),
      ('backbone', {'model': {'backbone': {'type': 'mobilenet'}}},
       r"task.model.backbone.type='mobilenet' has no adapter placement yet; "
       r"accepted with backbone_strategy='adapters': 'resnet', "
       r"'efficientnet'"),
  )
  def test_refusals(self, overrides, message):
    with self.assertRaisesRegex(ValueError, message):
      testing_utils.tiny_config(_EXPERIMENT, 'adapters', '/c/ckpt',
                                overrides)


_EFFICIENTNET = {'model': {'backbone': {'type': 'efficientnet',
                                        'efficientnet': {'model_id': 'b0'}}}}


class EfficientNetAdaptersTest(tf.test.TestCase, parameterized.TestCase):
  """Adapters on the projection conv of every MBConv block (an extension)."""

  def _checkpoint(self):
    probe = testing_utils.tiny_config(_EXPERIMENT,
                                      task_overrides=_EFFICIENTNET)
    return testing_utils.write_classification_checkpoint(
        probe.task.model, self.get_temp_dir(), 'trainer')

  def _model(self, strategy, checkpoint, **adapter_fields):
    overrides = dict(_EFFICIENTNET)
    if strategy == 'adapters':
      overrides['adapters'] = adapter_fields
    params = testing_utils.tiny_config(_EXPERIMENT, strategy, checkpoint,
                                       overrides)
    task = testing_utils.build_task(params)
    model = task.build_model()
    task.initialize(model)
    return params, task, model

  @pytest.mark.slow
  def test_placement_and_restore(self):
    checkpoint, classifier = self._checkpoint()
    _, _, model = self._model('adapters', checkpoint)
    blocks = [l for l in model.backbone.layers
              if isinstance(l, adapters.nn_blocks.InvertedBottleneckBlock)]
    self.assertLen(blocks, 16)  # EfficientNet-B0's MBConv blocks.
    found = adapters.adapters_of(model.backbone)
    self.assertLen(found, 16)
    for block in blocks:  # One each, on the projection, at its width.
      (adapter,) = adapters.adapters_of(block)
      self.assertIs(adapters.adapters_of(block._conv2)[0], adapter)  # pylint: disable=protected-access
      kernel = [w for w in adapter.weights if 'kernel' in w.name][-1]
      self.assertEqual(kernel.shape[-1], block._conv2.filters)  # pylint: disable=protected-access
    # Every base variable keeps the plain EfficientNet's checkpoint path and
    # is restored from the classification checkpoint.
    _assert_base_restored(self, model, classifier)
    # Only adapter weights train in the backbone.
    self.assertEqual({v.ref() for v in model.backbone.trainable_weights},
                     {v.ref() for v in adapters.adapter_variables(
                         model.backbone) if v.trainable})
    # Levels pick the groups that feed them: level 5 is groups 5-6 (4 + 1
    # blocks in B0).
    _, _, model = self._model('adapters', checkpoint, levels=[5])
    self.assertLen(adapters.adapters_of(model.backbone), 5)

  @parameterized.parameters('series', 'parallel')
  @pytest.mark.slow
  def test_zero_init_computes_the_frozen_efficientnet(self, kind):
    checkpoint, _ = self._checkpoint()
    _, _, frozen = self._model('freeze', checkpoint)
    _, _, adapted = self._model('adapters', checkpoint, type=kind)
    images = tf.random.uniform([2, 64, 64, 3])
    for training in (False, True):
      expected = frozen.backbone(images, training=training)
      actual = adapted.backbone(images, training=training)
      self.assertEqual(set(expected), set(actual))
      for level in expected:
        self.assertAllEqual(expected[level], actual[level])

  @pytest.mark.slow
  def test_after_training_steps_only_adapters_changed(self):
    checkpoint, _ = self._checkpoint()
    params, task, model = self._model('adapters', checkpoint,
                                      type='parallel', zero_init=False)
    optimizer, _, before = testing_utils.train_steps(task, model, params,
                                                     _STEPS)
    adapter_refs = {v.ref() for v in adapters.adapter_variables(
        model.backbone)}
    for variable in model.backbone.weights:
      if variable.ref() in adapter_refs:
        continue
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
      for name in optimizer.get_slot_names():
        with self.assertRaises(KeyError, msg=variable.name):
          optimizer.get_slot(variable, name)
    self.assertEmpty([v.name for v in adapters.adapter_variables(
        model.backbone) if (before[v.ref()] == v.numpy()).all()])


if __name__ == '__main__':
  tf.test.main()
