"""Every backbone strategy on a plain ViT (backbone 'plain_vit', simple
feature pyramid), after real train steps: frozen parts bit-identical with
no optimizer slot and no L2 term, trained parts moved and regularised."""
import os

from absl.testing import parameterized
from official.core import exp_factory
from official.core import train_utils
from official.modeling import hyperparams
from official.vision.modeling.backbones import vit
import pytest
import tensorflow as tf
import tf_keras

import testing_utils
from backbone_reuse import preflight
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.modeling import freezing

_STEPS = 3
_BLOCKS = testing_utils.PLAIN_VIT_BLOCKS
_VIT = testing_utils.PLAIN_VIT
_FASTER = 'backbone_reuse_fasterrcnn_coco'
_RETINANET = 'backbone_reuse_retinanet_coco'
_MASK = 'backbone_reuse_maskrcnn_coco'


def _merged(base: dict, changes: dict) -> dict:
  found = dict(base)
  for key, value in changes.items():
    found[key] = (_merged(base[key], value) if isinstance(value, dict)
                  and isinstance(base.get(key), dict) else value)
  return found


def _config(experiment, strategy='scratch', checkpoint=None, **task):
  return testing_utils.tiny_config(experiment, strategy, checkpoint,
                                   _merged({'model': _VIT}, task))


def _kernels(variables):
  return [v for v in variables if 'kernel' in v.name]


class PlainViTTest(tf.test.TestCase, parameterized.TestCase):

  def _checkpoint(self, experiment):
    path, _ = testing_utils.write_classification_checkpoint(
        _config(experiment).task.model, self.get_temp_dir(), 'trainer')
    return path

  def _train(self, experiment, strategy, **task):
    checkpoint = None if strategy == 'scratch' else self._checkpoint(
        experiment)
    params = _config(experiment, strategy, checkpoint, **task)
    task_ = testing_utils.build_task(params)
    model = task_.build_model()
    task_.initialize(model)
    optimizer, _, before = testing_utils.train_steps(task_, model, params,
                                                     _STEPS)
    return params, model, optimizer, before

  def assertFrozen(self, variables, trainable, optimizer, before):
    self.assertNotEmpty(variables)
    for variable in variables:
      self.assertNotIn(variable.ref(), trainable, msg=variable.name)
      self.assertAllEqual(before[variable.ref()], variable.numpy(),
                          msg=variable.name)
      for name in optimizer.get_slot_names():
        with self.assertRaises(KeyError, msg=variable.name):
          optimizer.get_slot(variable, name)

  def assertTrained(self, variables, trainable, optimizer, before):
    kernels = _kernels(variables)
    self.assertNotEmpty(kernels)
    for variable in kernels:
      self.assertIn(variable.ref(), trainable, msg=variable.name)
      self.assertFalse((before[variable.ref()] == variable.numpy()).all(),
                       msg=variable.name)
      optimizer.get_slot(variable, 'momentum')

  def test_the_backbone_is_model_gardens_vit_with_the_configs_sizes(self):
    params = _config(_FASTER)
    model = testing_utils.build_task(params).build_model()
    backbone = model.backbone
    self.assertIsInstance(backbone, vit.VisionTransformer)
    self.assertEqual(dict(backbone.output_specs),
                     {'3': tf.TensorShape([None, 8, 8, 32])})
    stages = freezing.backbone_stages(backbone)
    self.assertLen(stages, 1 + _BLOCKS)
    # The embeddings: patch convolution, class token, position embedding.
    names = sorted(v.name.split('/')[-2] + '/' + v.name.split('/')[-1]
                   for layer in stages[0] for v in layer.weights)
    self.assertLen(names, 4, names)  # Conv kernel and bias, cls, pos.
    self.assertTrue(any('pos_embedding' in n for n in names), names)
    # Every backbone variable is in exactly one stage.
    found = [v.ref() for s in stages for layer in s for v in layer.weights]
    self.assertCountEqual(found, [v.ref() for v in backbone.weights])

  @parameterized.parameters(_FASTER, _RETINANET)
  @pytest.mark.slow
  def test_freeze(self, experiment):
    _, model, optimizer, before = self._train(experiment, 'freeze')
    backbone = model.backbone
    self.assertFalse(backbone.trainable)
    trainable = {v.ref() for v in model.trainable_weights}
    # Weights, LayerNorms and the position embedding: bit-identical.
    self.assertFrozen(backbone.weights, trainable, optimizer, before)
    self.assertEmpty(backbone.losses)  # No L2 term from frozen kernels.
    self.assertNotEmpty(model.losses)  # The detector's.
    for name in testing_utils.DETECTOR_MODULES[experiment]:
      self.assertTrained(testing_utils.module_variables(model, name),
                         trainable, optimizer, before)

  @parameterized.parameters('finetune', 'scratch')
  @pytest.mark.slow
  def test_the_backbone_trains(self, strategy):
    params, model, optimizer, before = self._train(_FASTER, strategy)
    trainable = {v.ref() for v in model.trainable_weights}
    self.assertTrained(model.backbone.weights, trainable, optimizer, before)
    # Model Garden's regulariser where its ViT puts one: the patch
    # embedding only (its TransformerEncoderBlock does not pass the
    # kernel_regularizer on to its projections).
    (patch_embedding,) = [l for l in model.backbone.layers
                          if isinstance(l, tf_keras.layers.Conv2D)]
    patch_kernel = patch_embedding.kernel
    decay = params.task.losses.l2_weight_decay / 2.0
    self.assertGreater(decay, 0)
    (loss,) = model.backbone.losses
    self.assertAllClose(
        float(loss), decay * float(tf.reduce_sum(tf.square(patch_kernel))),
        rtol=1e-5)

  @parameterized.parameters(0, 1)
  @pytest.mark.slow
  def test_partial_freezes_the_embeddings_and_the_first_blocks(self, k):
    _, model, optimizer, before = self._train(_FASTER, 'partial',
                                                   frozen_stages=k)
    stages = freezing.backbone_stages(model.backbone)
    frozen = [v for s in stages[:k + 1] for layer in s for v in layer.weights]
    trained = [v for s in stages[k + 1:] for layer in s for v in layer.weights]
    trainable = {v.ref() for v in model.trainable_weights}
    self.assertFrozen(frozen, trainable, optimizer, before)
    self.assertTrained(trained, trainable, optimizer, before)
    # No L2 term: the patch embedding is frozen, and Model Garden's ViT
    # blocks carry none (as when fine-tuned, test_the_backbone_trains).
    self.assertEmpty(model.backbone.losses)

  @pytest.mark.slow
  def test_a_classifier_of_another_size_restores_its_position_embedding_resized(
      self):
    # Model Garden's classification task at 32 px (4x4 patches and a class
    # token), written as its trainer writes it; the detector at 64 px (8x8
    # patches and the class token).
    classification = _config(_FASTER).task.model
    classification.input_size = [32, 32, 3]
    path, classifier = testing_utils.write_classification_checkpoint(
        classification, self.get_temp_dir(), 'trainer')
    # Without the class token, the encoder is another edge of the model:
    # refused, every unmatched variable named.
    params = _config(_FASTER, 'freeze', path, model={'backbone': {
        'plain_vit': {'pooler': 'gap'}}})
    task = testing_utils.build_task(params)
    with self.assertRaisesRegex(
        backbone_checkpoint.BackboneCheckpointError,
        r'(?s)cannot initialise 35 backbone variable\(s\).*'
        r'pos_embedding:0 \(layer_with_weights-1/_pos_embed/pos_embedding\): '
        r'missing'):
      task.initialize(task.build_model())
    params = _config(_FASTER, 'freeze', path)
    task = testing_utils.build_task(params)
    model = task.build_model()
    task.initialize(model)
    saved = {p: v.numpy() for p, v in backbone_checkpoint.variables_by_path(
        classifier.backbone).values()}
    restored = {p: v.numpy() for p, v in backbone_checkpoint.variables_by_path(
        model.backbone).values()}
    (position,) = [p for p in restored if 'pos_embedding' in p]
    self.assertEqual(saved[position].shape, (1, 17, 32))
    self.assertEqual(restored[position].shape, (1, 1 + 64, 32))
    for name, value in restored.items():  # Everything else as saved.
      if name != position:
        self.assertAllEqual(value, saved[name], msg=name)
    # The class token's slot kept; the 4x4 grid interpolated to 8x8 as
    # Model Garden's own AddPositionEmbs interpolates.
    grid = vit.AddPositionEmbs()._interpolate(  # pylint: disable=protected-access
        saved[position][:, 1:], (4, 4), (8, 8))
    self.assertAllClose(restored[position][:, 1:], grid, atol=1e-6)
    self.assertAllEqual(restored[position][:, :1], saved[position][:, :1])

  def test_a_position_embedding_resizes_to_the_backbones_grid_not_a_square(
      self):
    # 4x16 patches (a 32x128 input at patch 8) are 64 tokens, as 8x8 are:
    # the grid comes from the backbone's AddPositionEmbs, not the count.
    layer = vit.AddPositionEmbs(posemb_target_shape=(4, 16))
    self.assertEqual(backbone_checkpoint.position_grid(layer), (4, 16))
    # A layer that knows no grid: matched as saved, never resized.
    self.assertIsNone(backbone_checkpoint.position_grid(vit.AddPositionEmbs()))
    self.assertIsNone(backbone_checkpoint.resized_position_embedding(
        tf.zeros([1, 17, 8]).numpy(), [1, 65, 8], None))
    saved = tf.random.normal([1, 1 + 16, 8]).numpy()
    resized = backbone_checkpoint.resized_position_embedding(
        saved, [1, 1 + 64, 8], (4, 16))
    self.assertAllClose(
        resized[:, 1:],
        layer._interpolate(saved[:, 1:], (4, 4), (4, 16)),  # pylint: disable=protected-access
        atol=1e-6)
    self.assertAllEqual(resized[:, :1], saved[:, :1])
    # No class slot in the backbone: dropped; one the checkpoint lacks, or a
    # length that is not the grid plus at most one slot: not resizable.
    self.assertEqual(backbone_checkpoint.resized_position_embedding(
        saved, [1, 64, 8], (4, 16)).shape, (1, 64, 8))
    for saved_shape, shape in (([1, 16, 8], [1, 65, 8]),
                               ([1, 17, 8], [1, 66, 8]),
                               ([1, 17, 8], [1, 65, 4])):
      self.assertIsNone(backbone_checkpoint.resized_position_embedding(
          tf.zeros(saved_shape).numpy(), shape, (4, 16)), msg=shape)

  def test_vitdet_schedule_decays_kernels_and_biases_only(self):
    # configs/schedules/vitdet_100ep.yaml's AdamW excludes variables by
    # name: against the names of a built plain-ViT Mask R-CNN, as Model
    # Garden's optimizer applies the list.
    params = _config(_MASK)
    params = hyperparams.override_params_dict(
        params, str(testing_utils.REPO / 'configs' / 'schedules' /
                    'vitdet_100ep.yaml'), is_strict=True)
    task = testing_utils.build_task(params)
    model = task.build_model()
    optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                      params.runtime)
    decayed = {v.name for v in model.trainable_variables
               if optimizer._do_use_weight_decay(v.name)}  # pylint: disable=protected-access
    kernels_and_biases = {v.name for v in model.trainable_variables
                          if v.name.split('/')[-1] in ('kernel:0', 'bias:0')}
    self.assertEqual(decayed, kernels_and_biases)
    self.assertEqual(task.task_config.losses.l2_weight_decay, 0.0)
    self.assertEqual(optimizer.gradient_clip_norm, 0.0)  # ViTDet's: none.

  def test_preflight_sizes_a_model_garden_vit_checkpoint_as_it_builds(self):
    # Model Garden's DeiT pretraining config as its trainer writes it beside
    # a checkpoint: type 'vit', sized by VIT_SPECS[model_name] when built
    # (its hidden_size field is 1), with a drop-path rate, pre-logits and
    # no 2-D outputs, none of which decides the variables a detector reads.
    directory = os.path.join(self.get_temp_dir(), 'deit')
    classification = exp_factory.get_exp_config('deit_imagenet_pretrain')
    classification.task.model.backbone.vit.model_name = 'vit-ti16'
    train_utils.serialize_config(classification, directory)
    tf.train.Checkpoint(step=tf.Variable(0)).save(
        os.path.join(directory, 'ckpt'))
    ti16 = {'backbone': {'plain_vit': {
        'patch_size': 16, 'hidden_size': 192, 'pooler': 'token',
        'transformer': {'mlp_dim': 768, 'num_heads': 3, 'num_layers': 12}}}}
    params = _config(_FASTER, 'freeze', directory, model=ti16)
    self.assertEqual(preflight.check_checkpoint_params(params.task), [])

    params = _config(_FASTER, 'freeze', directory)  # The tiny ViT.
    (problem,) = preflight.check_checkpoint_params(params.task)
    self.assertIn(
        "trained with another backbone (" + directory + "/params.yaml): "
        "plain_vit.hidden_size: checkpoint 192 (vit 'vit-ti16'), row 32; "
        "plain_vit.patch_size: checkpoint 16 (vit 'vit-ti16'), row 8; "
        "plain_vit.transformer.mlp_dim: checkpoint 768 (vit 'vit-ti16'), "
        "row 64; plain_vit.transformer.num_heads: checkpoint 3 "
        "(vit 'vit-ti16'), row 2; plain_vit.transformer.num_layers: "
        f"checkpoint 12 (vit 'vit-ti16'), row {_BLOCKS}.", problem)

  @parameterized.named_parameters(
      ('too_many_blocks', 'partial', {'frozen_stages': 3},
       r'task.frozen_stages=3 is out of range for a plain ViT with 2 '
       r"transformer blocks; accepted with backbone_strategy='partial': 0 "
       r'\(the patch and position embeddings only\) to 2'),
      ('adapters', 'adapters', {},
       r"task.model.backbone.type='plain_vit' has no adapter placement yet; "
       r"accepted with backbone_strategy='adapters': 'resnet', "
       r"'efficientnet'"),
      ('dropout_when_frozen', 'freeze', {'model': {'backbone': {
          'plain_vit': {'transformer': {'dropout_rate': 0.1}}}}},
       r'task.model.backbone.plain_vit.transformer.dropout_rate=0.1 would '
       r"keep perturbing a frozen backbone; accepted with "
       r"backbone_strategy='freeze': 0.0"),
      ('drop_path_when_partial', 'partial', {
          'frozen_stages': 1, 'model': {'backbone': {'plain_vit': {
              'init_stochastic_depth_rate': 0.1}}}},
       r'task.model.backbone.plain_vit.init_stochastic_depth_rate=0.1 would '
       r'keep perturbing a frozen backbone'),
      ('placeholder_sizes', 'finetune', {'model': {'backbone': {
          'plain_vit': {'hidden_size': 1, 'transformer': {'mlp_dim': 1,
                                                          'num_heads': 1}}}}},
       r"task.model.backbone.plain_vit.hidden_size=1, "
       r"transformer.mlp_dim=1: Model Garden's placeholder sizes .*"
       r'accepted: the ViT\'s sizes, e.g. DeiT-B/16: patch_size 16'),
      ('heads_do_not_divide', 'finetune', {'model': {'backbone': {
          'plain_vit': {'transformer': {'num_heads': 3}}}}},
       r'task.model.backbone.plain_vit.hidden_size=32 is not divisible by '
       r'transformer.num_heads=3; accepted: a multiple of it.'),
      ('a_multi_level_decoder', 'finetune', {'model': {'decoder': {
          'type': 'fpn'}}},
       r"task.model.decoder.type='fpn' cannot serve a plain ViT's single "
       r"feature level; accepted with backbone 'plain_vit': 'simple_fpn'"),
  )
  def test_refusals(self, strategy, task, message):
    with self.assertRaisesRegex(ValueError, message):
      _config(_FASTER, strategy, '/c/ckpt', **task)


if __name__ == '__main__':
  tf.test.main()
