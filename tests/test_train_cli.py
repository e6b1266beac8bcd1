"""`python -m backbone_reuse.train` end to end on generated COCO-format data."""
import json
import os
import subprocess
import sys

import tensorflow as tf
import yaml

import testing_utils


class TrainCliTest(tf.test.TestCase):

  def test_train_and_eval_writes_checkpoints_config_and_metrics(self):
    data = testing_utils.toy_data()  # JSON + PNGs -> TFRecords (converter).
    model_dir = os.path.join(self.get_temp_dir(), 'run')
    override = (f"task.train_data.input_path={data['train']},"
                f"task.validation_data.input_path={data['val']},"
                f"task.annotation_file={data['val_annotations']},"
                'task.backbone_strategy=scratch')
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.train',
         '--experiment=backbone_reuse_maskrcnn_coco',
         '--config_file=configs/smoke/rcnn_tiny.yaml',
         f'--params_override={override}',
         '--mode=train_and_eval', f'--model_dir={model_dir}'],
        cwd=testing_utils.REPO, capture_output=True, text=True, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])

    self.assertEqual(tf.train.latest_checkpoint(model_dir),
                     os.path.join(model_dir, 'ckpt-6'))
    with open(os.path.join(model_dir, 'params.yaml')) as f:
      params = yaml.safe_load(f)
    self.assertEqual(params['task']['backbone_strategy'], 'scratch')
    self.assertEqual(params['task']['model']['input_size'], [64, 64, 3])
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      metrics = json.load(f)
    self.assertEqual(metrics['step'], 6)
    for key in ('AP', 'AP50', 'APs', 'mask_AP', 'mask_AP50'):
      self.assertBetween(metrics['metrics'][key], -1.0, 1.0)
    with open(os.path.join(model_dir, 'parameters.json')) as f:
      self.assertGreater(json.load(f)['trainable_params'], 0)

  def test_refusal_is_one_line_before_any_model(self):
    model_dir = os.path.join(self.get_temp_dir(), 'refused')
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.train',
         '--experiment=backbone_reuse_fasterrcnn_coco',
         '--config_file=configs/smoke/rcnn_tiny.yaml',
         '--config_file=configs/strategies/freeze.yaml',
         '--mode=train', f'--model_dir={model_dir}'],
        cwd=testing_utils.REPO, capture_output=True, text=True, check=False)
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    self.assertEqual(testing_utils.error_lines(result), [
        "error: task.backbone_strategy='freeze' needs task.init_checkpoint (a "
        "classification checkpoint), got ''; set it, or use backbone_strategy "
        "'scratch'."])
    self.assertNotIn('Traceback', result.stderr)
    self.assertFalse(os.path.exists(os.path.join(model_dir, 'parameters.json')))


if __name__ == '__main__':
  tf.test.main()
