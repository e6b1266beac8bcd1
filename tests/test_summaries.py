"""Reading Model Garden's TensorBoard scalars: one reader, two users."""
import os
import time
from unittest import mock

import tensorflow as tf

from backbone_reuse.analysis import eval_summaries
from backbone_reuse.analysis import resources


class SummariesTest(tf.test.TestCase):

  def _write(self, model_dir, subdir, rows):
    writer = tf.summary.create_file_writer(os.path.join(model_dir, subdir))
    with writer.as_default():
      for step, values in rows:
        for tag, value in values.items():
          tf.summary.scalar(tag, value, step=step)
    writer.close()

  def test_training_rates_and_last_evaluation(self):
    model_dir = self.get_temp_dir()
    self._write(model_dir, 'train', [
        (10, {'steps_per_second': 1.5, 'total_loss': 3.0}),
        (20, {'steps_per_second': 2.0, 'total_loss': 2.0}),
        (30, {'steps_per_second': 2.5})])
    self._write(model_dir, 'validation', [(20, {'AP': 0.1}),
                                          (30, {'AP': 0.2, 'APr': 0.05})])
    self.assertAllClose(resources.train_steps_per_second(model_dir),
                        [1.5, 2.0, 2.5])
    self.assertAlmostEqual(resources.median_step_seconds([1.5, 2.0, 2.5]),
                           1 / 2.25)
    step, values = eval_summaries.read_last_eval(model_dir)
    self.assertEqual(step, 30)
    self.assertAllClose([values['AP'], values['APr']], [0.2, 0.05])
    self.assertEqual(eval_summaries.read_last_eval(model_dir, 'none'),
                     (-1, {}))

  def test_cpu_share_is_cpu_seconds_over_wall_seconds(self):
    # Injected clocks: the share is exact, whatever else the host runs.
    with mock.patch.object(resources, 'clock', return_value=(104.0, 13.0)):
      share = resources.cpu_share(since=(100.0, 10.0))
    self.assertEqual(share['cpu_seconds_per_second'], 0.75)
    self.assertEqual(share['cpus'], os.cpu_count())

  def test_the_clock_counts_this_process_cpu_time(self):
    wall, cpu = resources.clock()
    spin = time.process_time()
    while time.process_time() - spin < 0.05:  # 50 ms of this process's CPU.
      pass
    later_wall, later_cpu = resources.clock()
    self.assertGreaterEqual(later_cpu - cpu, 0.05)
    # Without `since`: since the module's import.
    self.assertGreater(resources.cpu_share()['cpu_seconds_per_second'], 0)


if __name__ == '__main__':
  tf.test.main()
