"""Backbone import from classification checkpoints, and its loud failures."""
import os
import re

from absl.testing import parameterized
import tensorflow as tf

from backbone_reuse.modeling import backbone_checkpoint
import testing_utils


def _initialise_frozen_detector(checkpoint_path):
  params = testing_utils.tiny_config(
      'backbone_reuse_fasterrcnn_coco', 'freeze',
      init_checkpoint=checkpoint_path)
  task = testing_utils.build_task(params)
  task.initialize(task.build_model())


class BackboneCheckpointTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      ('nested', 'model/_backbone'), ('root', 'backbone'),
      ('trainer', 'backbone'))
  def test_classifier_checkpoint_initialises_detector_backbone(
      self, layout, expected_layout):
    probe = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    path, classifier = testing_utils.write_classification_checkpoint(
        probe.task.model, self.get_temp_dir(), layout)
    params = testing_utils.tiny_config(
        'backbone_reuse_fasterrcnn_coco', 'finetune', init_checkpoint=path)
    task = testing_utils.build_task(params)
    model = task.build_model()

    found = backbone_checkpoint.restore_backbone(model.backbone, path)
    task.initialize(model)

    self.assertEqual(found, expected_layout)
    self.assertLen(model.backbone.weights, len(classifier.backbone.weights))
    for ours, theirs in zip(model.backbone.weights,
                            classifier.backbone.weights):
      self.assertAllEqual(ours, theirs, msg=ours.name)

  def test_directory_resolves_to_latest_checkpoint(self):
    probe = testing_utils.tiny_config('backbone_reuse_retinanet_coco')
    _, classifier = testing_utils.write_classification_checkpoint(
        probe.task.model, self.get_temp_dir(), 'root')
    params = testing_utils.tiny_config(
        'backbone_reuse_retinanet_coco', 'freeze',
        init_checkpoint=self.get_temp_dir())
    task = testing_utils.build_task(params)
    model = task.build_model()
    task.initialize(model)
    self.assertAllEqual(model.backbone.weights[0],
                        classifier.backbone.weights[0])

  def test_an_unpacked_tarball_directory_resolves(self):
    # As a published checkpoint unpacks: prefixes and no `checkpoint` file,
    # in the folder itself or in its single subdirectory.
    root = self.get_temp_dir()
    flat = os.path.join(root, 'flat')
    variable = tf.Variable([1.0, 2.0])
    for step in (500, 109800):
      tf.train.Checkpoint(v=variable).write(os.path.join(flat, f'ckpt-{step}'))
    self.assertFalse(tf.io.gfile.exists(os.path.join(flat, 'checkpoint')))
    self.assertEqual(backbone_checkpoint.resolve_path(flat),
                     os.path.join(flat, 'ckpt-109800'))
    nested = os.path.join(root, 'tarball', 'resnet-rs-101-i192')
    tf.train.Checkpoint(v=variable).write(os.path.join(nested, 'ckpt-42'))
    self.assertEqual(
        backbone_checkpoint.resolve_path(os.path.join(root, 'tarball')),
        os.path.join(nested, 'ckpt-42'))
    empty = os.path.join(root, 'empty')
    os.makedirs(os.path.join(empty, 'a'))
    os.makedirs(os.path.join(empty, 'b'))
    with self.assertRaisesRegex(
        backbone_checkpoint.BackboneCheckpointError,
        r"^--init_checkpoint='.*empty' is a directory without a checkpoint "
        r'\(no \*.index file in it or its single subdirectory\)'):
      backbone_checkpoint.resolve_path(empty, '--init_checkpoint')

  def test_different_architecture_fails_listing_unmatched_variables(self):
    other = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    other.task.model.backbone.resnet.model_id = 10  # Fewer blocks than R-18.
    path, _ = testing_utils.write_classification_checkpoint(
        other.task.model, self.get_temp_dir(), 'nested')
    params = testing_utils.tiny_config(
        'backbone_reuse_fasterrcnn_coco', 'freeze', init_checkpoint=path)
    task = testing_utils.build_task(params)
    model = task.build_model()
    before = [v.numpy() for v in model.backbone.weights]

    with self.assertRaises(backbone_checkpoint.BackboneCheckpointError) as e:
      task.initialize(model)

    message = str(e.exception)
    self.assertRegex(message, r'cannot initialise (\d+) backbone variable')
    count = int(
        re.search(r'initialise (\d+) backbone', message)[1])
    self.assertGreater(count, 0)
    listed = [l for l in message.splitlines() if l.startswith('  ')]
    self.assertLen(listed, min(count, 20))
    self.assertIn(': missing', message)
    # Nothing was half-restored.
    for value, variable in zip(before, model.backbone.weights):
      self.assertAllEqual(value, variable)

  def test_shape_mismatch_is_reported(self):
    other = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    other.task.model.backbone.resnet.depth_multiplier = 0.5
    path, _ = testing_utils.write_classification_checkpoint(
        other.task.model, self.get_temp_dir(), 'root')
    with self.assertRaisesRegex(backbone_checkpoint.BackboneCheckpointError,
                                'shape'):
      _initialise_frozen_detector(path)

  def test_checkpoint_without_backbone_fails(self):
    path = tf.train.Checkpoint(step=tf.Variable(1)).write(
        self.get_temp_dir() + '/other')
    with self.assertRaisesRegex(backbone_checkpoint.BackboneCheckpointError,
                                'holds no backbone'):
      _initialise_frozen_detector(path)


if __name__ == '__main__':
  tf.test.main()
