"""verify_data names each corrupt shard; training on one points at it."""
import os
import shutil

import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse import training
from backbone_reuse.data import tfrecord_check
from backbone_reuse.tools import verify_data


def _write_shard(path, count):
  with tf.io.TFRecordWriter(path) as writer:
    for index in range(count):
      writer.write(f'record {index:04d} '.encode() * 50)


def _truncate(path, fraction):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:int(len(data) * fraction)])


def _run(*flags):
  return testing_utils.run_module('backbone_reuse.tools.verify_data', *flags)


class VerifyDataTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_names_each_corrupt_shard_and_its_readable_records(self):
    directory = self.get_temp_dir()
    good = os.path.join(directory, 'data-00000-of-00002')
    bad = os.path.join(directory, 'data-00001-of-00002')
    _write_shard(good, 10)
    _write_shard(bad, 10)
    _truncate(bad, 0.55)  # Records are the same size: 5 survive whole.
    self.assertEqual(tfrecord_check.read_shard(good),
                     tfrecord_check.Shard(good, 10))
    broken = tfrecord_check.read_shard(bad)
    self.assertEqual(broken.records, 5)
    self.assertIsNotNone(broken.error)

    result = _run(f'--input_path={directory}/data-*')
    self.assertEqual(result.returncode, verify_data.CORRUPT_EXIT_CODE)
    lines = result.stdout.splitlines()
    self.assertEqual(lines[0], f'ok {good}: 10 records')
    self.assertTrue(lines[1].startswith(
        f'CORRUPT {bad}: 5 records readable, then: '), lines[1])
    self.assertEqual(lines[2], '2 shard(s), 15 records readable, 1 corrupt.')

    self.assertEqual(_run(f'--input_path={good}').returncode, 0)
    missing = _run(f'--input_path={good},{directory}/nothing-*')
    self.assertEqual(missing.returncode, verify_data.BAD_INPUT_EXIT_CODE)
    self.assertIn(f"error: --input_path: pattern '{directory}/nothing-*' "
                  'matches no file.', missing.stderr)

  def test_a_shard_cut_inside_a_record_header_is_corrupt(self):
    # Cut 7 bytes into the 6th record (inside its 8-byte length: TensorFlow's
    # reader then ends silently after 5 records) and 13 bytes in (inside the
    # data: the reader raises). Both are corrupt, with 5 whole records.
    directory = self.get_temp_dir()
    for cut in (7, 13):
      path = os.path.join(directory, f'cut{cut}')
      _write_shard(path, 10)
      with open(path, 'rb') as f:
        data = f.read()
      record = len(data) // 10
      with open(path, 'wb') as f:
        f.write(data[:5 * record + cut])
      shard = tfrecord_check.read_shard(path)
      self.assertEqual(shard.records, 5, cut)
      self.assertIsNotNone(shard.error, cut)
      self.assertTrue(tfrecord_check.report_line(shard).startswith(
          f'CORRUPT {path}: 5 records readable, then: '))
    self.assertIn('7 trailing byte(s) are not a whole record',
                  tfrecord_check.read_shard(os.path.join(directory,
                                                      'cut7')).error)
    empty = os.path.join(directory, 'empty')
    _write_shard(empty, 0)
    self.assertEqual(tfrecord_check.read_shard(empty),
                     tfrecord_check.Shard(empty, 0))

  @pytest.mark.slow
  def test_training_on_a_corrupt_shard_names_the_pattern_and_the_tool(self):
    directory = self.get_temp_dir()
    shard = os.path.join(directory, 'train-00000-of-00001.tfrecord')
    (source,) = tf.io.gfile.glob(testing_utils.toy_data()['train'])
    shutil.copy(source, shard)
    _truncate(shard, 0.2)
    pattern = os.path.join(directory, 'train-*')
    params = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    params.override({'task': {'train_data': {'input_path': pattern}}})
    with self.assertRaises(tf.errors.DataLossError) as caught:
      training.run(params, os.path.join(directory, 'run'), 'train')
    message = caught.exception.message
    self.assertIn(f'task.train_data.input_path={pattern!r}', message)
    self.assertIn(tfrecord_check.command_for(pattern), message)


if __name__ == '__main__':
  tf.test.main()
