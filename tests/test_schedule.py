"""A learning-rate schedule follows trainer.train_steps (configs/schedule.py)."""
import os
import subprocess
import sys

from absl.testing import parameterized
from official.modeling.optimization import optimizer_factory
import tensorflow as tf

import testing_utils
from backbone_reuse.configs import resolve

_R101_FPN = ['configs/coco/fasterrcnn_r101_fpn.yaml',
             'configs/schedules/600_epochs.yaml']


def _learning_rate(trainer, step: int) -> float:
  factory = optimizer_factory.OptimizerFactory(trainer.optimizer_config)
  return float(factory.build_learning_rate()(step))


def _resolve(experiment, config_files=(), override=None):
  return resolve.experiment_config(experiment, config_files, override,
                                   root=str(testing_utils.REPO))


class ScheduleFollowsTrainStepsTest(tf.test.TestCase, parameterized.TestCase):

  def test_shapes_detector_steps_alone_rescale_cosine_and_warmup(self):
    default = _resolve('shapes_maskrcnn').trainer
    self.assertEqual((default.train_steps,
                      default.optimizer_config.learning_rate.cosine.decay_steps,
                      default.optimizer_config.warmup.linear.warmup_steps),
                     (1000, 1000, 50))
    trainer = _resolve('shapes_maskrcnn', [],
                       'trainer.train_steps=400').trainer
    optimizer = trainer.optimizer_config
    self.assertEqual(optimizer.learning_rate.cosine.decay_steps, 400)
    self.assertEqual(optimizer.warmup.linear.warmup_steps, 20)
    # The 400-step run anneals: its last learning rate is the cosine's end
    # (0), not the 65 % of the peak that decay_steps=1000 left.
    peak = optimizer.learning_rate.cosine.initial_learning_rate
    self.assertAllClose(_learning_rate(trainer, 400), 0.0, atol=1e-7)
    self.assertAllClose(_learning_rate(trainer, 200), peak / 2)

  def test_paper_config_steps_alone_rescale_boundaries_and_warmup(self):
    trainer = _resolve('backbone_reuse_fasterrcnn_coco', _R101_FPN,
                       'trainer.train_steps=110894').trainer
    optimizer = trainer.optimizer_config
    # 1062734 and 1090458 of 1108940 steps, x 110894 / 1108940.
    self.assertEqual(list(optimizer.learning_rate.stepwise.boundaries),
                     [106273, 109045])
    self.assertEqual(optimizer.warmup.linear.warmup_steps, 50)  # Of 500.
    self.assertAllClose(_learning_rate(trainer, 110894), 0.0016)

  def test_a_yaml_setting_steps_alone_rescales_the_schedule_before_it(self):
    steps_only = os.path.join(self.get_temp_dir(), 'steps.yaml')
    with open(steps_only, 'w') as f:
      f.write('trainer:\n  train_steps: 110894\n')
    trainer = _resolve('backbone_reuse_fasterrcnn_coco',
                       _R101_FPN + [steps_only]).trainer
    optimizer = trainer.optimizer_config
    # As with --params_override above: 1062734 and 1090458 of 1108940
    # steps, x 110894 / 1108940; warm-up 500 -> 50.
    self.assertEqual(list(optimizer.learning_rate.stepwise.boundaries),
                     [106273, 109045])
    self.assertEqual(optimizer.warmup.linear.warmup_steps, 50)

  def test_a_yaml_setting_steps_and_its_schedule_is_taken_as_it_is(self):
    # The smoke YAML after the paper's sets steps (6) and its own schedule:
    # neither is rescaled (a rescaling of the paper's would give [5, 5]).
    trainer = _resolve('backbone_reuse_fasterrcnn_coco',
                       _R101_FPN + ['configs/smoke/rcnn_tiny.yaml']).trainer
    self.assertEqual(list(trainer.optimizer_config.learning_rate.stepwise
                          .boundaries), [4, 5])
    self.assertEqual(trainer.optimizer_config.warmup.linear.warmup_steps, 2)

  def test_tiny_run_of_a_paper_schedule_still_decays_twice(self):
    trainer = _resolve('backbone_reuse_fasterrcnn_coco', _R101_FPN,
                       'trainer.train_steps=6').trainer
    optimizer = trainer.optimizer_config
    self.assertEqual(list(optimizer.learning_rate.stepwise.boundaries), [5, 5])
    self.assertEqual(optimizer.warmup.linear.warmup_steps, 1)
    self.assertAllClose(_learning_rate(trainer, 6), 0.0016)

  def test_a_layer_setting_steps_and_learning_rates_still_rescales(self):
    # Only step counts are taken as the layer's own: a new learning rate
    # with new steps must not leave a cosine over the old steps.
    trainer = _resolve(
        'shapes_classification', [],
        'trainer.train_steps=3200,'
        'trainer.optimizer_config.learning_rate.cosine.initial_learning_rate'
        '=0.1').trainer
    optimizer = trainer.optimizer_config
    self.assertEqual((optimizer.learning_rate.cosine.decay_steps,
                      optimizer.learning_rate.cosine.initial_learning_rate),
                     (3200, 0.1))  # The factory's: 1600, 0.05.
    self.assertGreater(_learning_rate(trainer, 2400), 0.0)

  def test_a_layer_setting_steps_and_schedule_is_taken_as_it_is(self):
    trainer = _resolve(
        'shapes_maskrcnn', [],
        'trainer.train_steps=400,'
        'trainer.optimizer_config.learning_rate.cosine.decay_steps=300,'
        'trainer.optimizer_config.warmup.linear.warmup_steps=7').trainer
    optimizer = trainer.optimizer_config
    self.assertEqual((optimizer.learning_rate.cosine.decay_steps,
                      optimizer.warmup.linear.warmup_steps), (300, 7))

  @parameterized.named_parameters(
      ('cosine_beyond_steps', 'shapes_maskrcnn', [],
       'trainer.train_steps=400,'
       'trainer.optimizer_config.learning_rate.cosine.decay_steps=1000',
       r'learning_rate.cosine.decay_steps=1000 is beyond '
       r'trainer.train_steps=400: the run would stop before its learning '
       r'rate anneals'),
      ('boundary_at_the_end', 'backbone_reuse_fasterrcnn_coco', _R101_FPN,
       'trainer.train_steps=1000,'
       'trainer.optimizer_config.learning_rate.stepwise.boundaries=[500,1000]',
       r'learning_rate.stepwise.boundaries=\[500, 1000\] reach '
       r'trainer.train_steps=1000: the last decay would never happen'),
      ('warmup_beyond_steps', 'shapes_maskrcnn', [],
       'trainer.train_steps=40,'
       'trainer.optimizer_config.learning_rate.cosine.decay_steps=40,'
       'trainer.optimizer_config.warmup.linear.warmup_steps=50',
       r'warmup.linear.warmup_steps=50 is beyond trainer.train_steps=40'),
  )
  def test_refuses_a_schedule_that_cannot_anneal(self, experiment, files,
                                                 override, message):
    with self.assertRaisesRegex(ValueError, message) as e:
      _resolve(experiment, files, override)
    self.assertLen(str(e.exception).splitlines(), 1)

  def test_train_cli_refuses_in_one_line_before_building(self):
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.train',
         '--experiment=shapes_maskrcnn', '--mode=train',
         f'--model_dir={self.get_temp_dir()}/run',
         '--params_override=trainer.train_steps=400,trainer.optimizer_config'
         '.learning_rate.cosine.decay_steps=1000'],
        cwd=testing_utils.REPO, capture_output=True, text=True, timeout=300)
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    self.assertEqual(testing_utils.error_lines(result), [
        'error: trainer.optimizer_config.learning_rate.cosine.decay_steps='
        '1000 is beyond trainer.train_steps=400: the run would stop before '
        'its learning rate anneals; make them agree, or set '
        'trainer.train_steps alone (the schedule then follows it).'])


if __name__ == '__main__':
  tf.test.main()
