"""`python -m backbone_reuse.train` end to end on generated COCO-format data."""
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml

from backbone_reuse.analysis import eval_summaries
import testing_utils


class TrainCliTest(tf.test.TestCase):

  def _train(self, experiment: str, model_dir: str, train_split: str,
             overrides: str = '') -> subprocess.CompletedProcess:
    """`python -m backbone_reuse.train` from scratch on the toy set (JSON +
    PNGs -> TFRecords by the converter), evaluated on its val split."""
    data = testing_utils.toy_data()
    override = (f'task.train_data.input_path={data[train_split]},'
                f"task.validation_data.input_path={data['val']},"
                f"task.annotation_file={data['val_annotations']},"
                'task.backbone_strategy=scratch' + overrides)
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.train',
         f'--experiment={experiment}',
         '--config_file=configs/smoke/rcnn_tiny.yaml',
         f'--params_override={override}',
         '--mode=train_and_eval', f'--model_dir={model_dir}'],
        cwd=testing_utils.REPO, capture_output=True, text=True, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return result

  @pytest.mark.slow
  def test_train_and_eval_writes_checkpoints_config_and_metrics(self):
    model_dir = os.path.join(self.get_temp_dir(), 'run')
    result = self._train('backbone_reuse_maskrcnn_coco', model_dir, 'train')

    self.assertEqual(tf.train.latest_checkpoint(model_dir),
                     os.path.join(model_dir, 'ckpt-6'))
    with open(os.path.join(model_dir, 'params.yaml')) as f:
      params = yaml.safe_load(f)
    self.assertEqual(params['task']['backbone_strategy'], 'scratch')
    self.assertEqual(params['task']['model']['input_size'], [64, 64, 3])
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      metrics = json.load(f)
    self.assertEqual(metrics['step'], 6)
    # Six steps learn next to nothing (what training does is checked below);
    # what must hold is that both COCO evaluations (boxes and masks) ran and
    # wrote all twelve of COCO's numbers, each a precision or recall in
    # [0, 1] or COCO's -1 (no ground truth in that area range).
    coco = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'ARmax1', 'ARmax10',
            'ARmax100', 'ARs', 'ARm', 'ARl')
    for prefix in ('', 'mask_'):
      for name in coco:
        value = metrics['metrics'][prefix + name]
        self.assertTrue(value == -1.0 or 0.0 <= value <= 1.0,
                        f'{prefix + name}={value}')
    with open(os.path.join(model_dir, 'parameters.json')) as f:
      self.assertGreater(json.load(f)['trainable_params'], 0)
    # The process ends without interpreter teardown (train.end_process):
    # nothing it wrote may be lost — the last training summaries, the gin
    # config written last, and the final log line.
    train_steps = eval_summaries.read_scalars(model_dir, 'train')
    self.assertEqual(max(train_steps), 6)
    self.assertIn('training_loss', train_steps[6])
    self.assertTrue(os.path.isfile(os.path.join(
        model_dir, 'operative_config.train_and_eval.gin')))
    self.assertIn('Run finished; everything is written to', result.stderr)

  def _train_on_val(self, steps: int) -> dict:
    """Box-only Faster R-CNN from scratch, trained and evaluated on the toy
    val images; its COCO metrics."""
    model_dir = os.path.join(self.get_temp_dir(), f'steps{steps}')
    self._train('backbone_reuse_fasterrcnn_coco', model_dir, 'val',
                f',trainer.train_steps={steps},'
                f'trainer.validation_interval={steps},'
                f'trainer.checkpoint_interval={steps},'
                f'trainer.steps_per_loop={min(steps, 50)},'
                f'trainer.summary_interval={min(steps, 50)}')
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      metrics = json.load(f)
    self.assertEqual(metrics['step'], steps)
    return metrics['metrics']

  @pytest.mark.slow
  def test_trained_detector_beats_untrained_on_the_same_images(self):
    # Measured: AP50 0.022 after one step, 0.476 after 200 (AP 0.004 and
    # 0.204); the schedule follows train_steps, so both anneal.
    untrained = self._train_on_val(1)
    trained = self._train_on_val(200)
    self.assertGreater(trained['AP50'], untrained['AP50'] + 0.2)
    self.assertGreater(trained['AP'], untrained['AP'])

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
