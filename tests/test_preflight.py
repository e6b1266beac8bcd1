"""Preflight: each problem of a run's inputs is found before the model is
built, one line naming the field, the value and what is accepted."""
import os
import subprocess
import sys

import tensorflow as tf

import testing_utils
from backbone_reuse import preflight
from backbone_reuse.configs import resolve


class PreflightTest(tf.test.TestCase):

  def test_a_sound_run_passes(self):
    params = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco')
    found = preflight.check(params, os.path.join(self.get_temp_dir(), 'run'))
    self.assertEqual(found['problems'], [])

  def test_a_classification_run_is_checked_as_such(self):
    directory = self.get_temp_dir()
    shard = os.path.join(directory, 'upstream-00000-of-00001')
    with tf.io.TFRecordWriter(shard) as writer:
      writer.write(tf.train.Example().SerializeToString())
    params = resolve.experiment_config('shapes_classification', [], {
        'task': {'train_data': {'input_path': shard},
                 'validation_data': {'input_path': shard}}})
    self.assertEqual(preflight.check(params, directory)['problems'], [])
    with tf.io.TFRecordWriter(shard) as writer:
      writer.write(b'not a tf.Example')
    problems = preflight.check(params, directory)['problems']
    self.assertLen(problems, 2)
    self.assertIn('does not decode as a tf.Example', problems[0])

  def test_a_backbone_checkpoint_of_another_architecture_is_found(self):
    other = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco')
    other.task.model.backbone.resnet.depth_multiplier = 0.5
    checkpoint, _ = testing_utils.write_classification_checkpoint(
        other.task.model, self.get_temp_dir(), 'nested')
    params = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco',
                                       'freeze', checkpoint)
    (problem,) = preflight.check_checkpoint(params.task)
    self.assertRegex(problem, r"^task.init_checkpoint='.*' \(layout "
                              r'model/_backbone\) cannot initialise \d+ '
                              r'backbone variable\(s\).*\(first: .*shape')

  def _published_checkpoint(self, backbone_changes):
    """A classification checkpoint as Model Garden publishes one: the
    trainer's checkpoint and its params.yaml (Model Garden's serializer),
    the backbone changed as given."""
    from official.core import exp_factory  # pylint: disable=g-import-not-at-top
    from official.core import train_utils  # pylint: disable=g-import-not-at-top
    row = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco')
    directory = os.path.join(self.get_temp_dir(), 'published')
    path, _ = testing_utils.write_classification_checkpoint(
        row.task.model, directory, 'trainer')
    classification = exp_factory.get_exp_config('resnet_imagenet')
    classification.task.model.backbone = row.task.model.backbone.as_dict()
    classification.override({'task': {'model': {'backbone': {
        'resnet': backbone_changes}}}}, is_strict=True)
    train_utils.serialize_config(classification, directory)
    return directory, path

  def test_a_published_checkpoint_of_another_backbone_is_named(self):
    row = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco')
    se_ratio = row.task.model.backbone.resnet.se_ratio
    directory, _ = self._published_checkpoint(
        {'model_id': 50, 'se_ratio': se_ratio + 0.25,
         'stochastic_depth_drop_rate': 0.1})
    params = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco',
                                       'freeze', directory)
    (problem,) = preflight.check_checkpoint_params(params.task)
    self.assertRegex(
        problem, r"^task.init_checkpoint='.*published' was trained with "
        r'another backbone \(.*published/params.yaml\): resnet.model_id: '
        r'checkpoint 50, row 18; resnet.se_ratio: checkpoint '
        f'{se_ratio + 0.25}, row {se_ratio}\\. '
        r"Use the checkpoint of the row's backbone")
    # The drop rate only changes training: not a difference. And preflight
    # stops there, without building a model.
    self.assertNotIn('stochastic_depth', problem)
    self.assertEqual(preflight.check(params, directory)['problems'],
                     [problem])

  def test_a_published_checkpoint_of_the_rows_backbone_passes(self):
    directory, path = self._published_checkpoint(
        {'stochastic_depth_drop_rate': 0.1})
    for given in (directory, path):  # The folder, or the prefix in it.
      params = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco',
                                         'freeze', given)
      self.assertEqual(preflight.check_checkpoint_params(params.task), [])
      self.assertEqual(preflight.check_checkpoint(params.task), [])

  def test_train_cli_refuses_each_problem_in_one_line(self):
    directory = self.get_temp_dir()
    not_examples = os.path.join(directory, 'val-00000-of-00001')
    with tf.io.TFRecordWriter(not_examples) as writer:
      writer.write(b'not a tf.Example')
    blocker = os.path.join(directory, 'a_file')
    with open(blocker, 'w') as f:
      f.write('a file where the model dir should go')
    missing_json = os.path.join(directory, 'missing.json')
    override = ','.join([
        f'task.train_data.input_path={directory}/train-*',
        f'task.validation_data.input_path={not_examples}',
        f'task.annotation_file={missing_json}',
        'task.backbone_strategy=finetune',
        f'task.init_checkpoint={directory}/no_checkpoint',
    ])
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.train',
         '--experiment=backbone_reuse_maskrcnn_coco',
         '--config_file=configs/smoke/rcnn_tiny.yaml',
         f'--params_override={override}', '--mode=train_and_eval',
         f'--model_dir={blocker}/run'],
        cwd=testing_utils.REPO, capture_output=True, text=True, check=False)
    self.assertEqual(result.returncode, preflight.EXIT_CODE,
                     msg=result.stderr[-3000:])
    errors = testing_utils.error_lines(result)
    self.assertLen(errors, 5, msg='\n'.join(errors))
    expected_starts = [
        f"error: --model_dir='{blocker}/run' is not writable",
        f"error: task.train_data.input_path='{directory}/train-*': pattern "
        f"'{directory}/train-*' matches no file. Accepted:",
        f"error: task.validation_data.input_path='{not_examples}': the "
        f'first record of {not_examples} does not decode',
        f"error: task.annotation_file='{missing_json}': no such file; "
        'accepted: a COCO/LVIS JSON',
        f"error: task.init_checkpoint='{directory}/no_checkpoint': no such "
        'checkpoint',
    ]
    for line, start in zip(errors, expected_starts):
      self.assertTrue(line.startswith(start), msg=f'{line!r} vs {start!r}')
    self.assertIn('python -m backbone_reuse.tools.verify_data '
                  f'--input_path={not_examples}', errors[2])
    # Refused before any model was built.
    self.assertNotIn('Parameters:', result.stderr)


if __name__ == '__main__':
  tf.test.main()
