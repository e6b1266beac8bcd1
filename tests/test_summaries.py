"""Reading Model Garden's TensorBoard scalars: one reader, two users."""
import os
import time

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

  def test_cpu_share_counts_this_process_only(self):
    start = resources.clock()
    while time.monotonic() - start[0] < 0.5:  # Busy: up to 1 CPU s/s.
      pass
    busy = resources.cpu_share(since=start)
    self.assertEqual(busy['cpus'], os.cpu_count())
    self.assertGreater(busy['cpu_seconds_per_second'], 0.2)
    start = resources.clock()
    time.sleep(0.5)
    idle = resources.cpu_share(since=start)
    self.assertLess(idle['cpu_seconds_per_second'],
                    busy['cpu_seconds_per_second'])
    # Without `since`: since the module's import.
    self.assertGreater(resources.cpu_share()['cpu_seconds_per_second'], 0)


if __name__ == '__main__':
  tf.test.main()
