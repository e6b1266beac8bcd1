"""Your own COCO-format data -> TFRecords: the converter CLI, its refusals,
and category ids kept as the dataset has them."""
import json
import os

from official.vision.dataloaders import tf_example_decoder
import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse import errors
from backbone_reuse.data import coco_conversion

def _run(*flags):
  return testing_utils.run_module('backbone_reuse.data.coco_tfrecord', *flags)


class CocoTfrecordTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_cli_converts_and_keeps_the_dataset_ids(self):
    directory = self.get_temp_dir()
    annotation_file, image_dir = testing_utils.own_coco_dataset(directory)
    prefix = os.path.join(directory, 'records', 'train')
    result = _run(f'--annotation_file={annotation_file}',
                  f'--image_dir={image_dir}', f'--output_prefix={prefix}',
                  '--num_shards=2')
    self.assertEqual(result.returncode, 0, msg=result.stderr[-2000:])
    self.assertEqual(result.stdout.strip().splitlines()[-1], f'{prefix}-*')
    files = tf.io.gfile.glob(f'{prefix}-*')
    self.assertLen(files, 2)
    decoder = tf_example_decoder.TfExampleDecoder(include_mask=False)
    found = {}
    for record in tf.data.TFRecordDataset(files):
      decoded = decoder.decode(record)
      found[int(decoded['source_id'])] = decoded[
          'groundtruth_classes'].numpy().tolist()
    self.assertEqual(found, {100: [1001], 101: [2500], 102: [3999]})

  def _refused(self, annotation_file, image_dir, message):
    with self.assertRaisesRegex(errors.BadInput, message):
      coco_conversion.check_annotations(annotation_file, image_dir)
    result = _run(f'--annotation_file={annotation_file}',
                  f'--image_dir={image_dir}',
                  f'--output_prefix={self.get_temp_dir()}/out')
    self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE)
    lines = testing_utils.error_lines(result)
    self.assertLen(lines, 1, msg=result.stderr[-2000:])
    self.assertRegex(lines[0], message)
    self.assertEmpty(tf.io.gfile.glob(f'{self.get_temp_dir()}/out-*'))

  @pytest.mark.slow
  def test_refuses_what_is_not_coco_instances(self):
    directory = self.get_temp_dir()
    annotation_file, image_dir = testing_utils.own_coco_dataset(directory)
    with open(annotation_file) as f:
      dataset = json.load(f)
    broken = os.path.join(directory, 'broken.json')
    with open(broken, 'w') as f:
      f.write('{"images": [')
    self._refused(broken, image_dir, r'broken.json is not JSON')
    captions = os.path.join(directory, 'captions.json')
    with open(captions, 'w') as f:
      json.dump({'images': dataset['images'], 'annotations': [
          {'image_id': 100, 'id': 1, 'caption': 'a kettle'}]}, f)
    self._refused(captions, image_dir,
                  r"annotations\[0\] lacks \['category_id', 'bbox'\]")
    unknown = os.path.join(directory, 'unknown.json')
    with open(unknown, 'w') as f:
      json.dump(dict(dataset, categories=testing_utils.OWN_CATEGORIES[:2]), f)
    self._refused(unknown, image_dir,
                  r'annotations use category ids \[3999\] that no category has')

  def test_names_the_images_the_folder_lacks(self):
    annotation_file, image_dir = testing_utils.own_coco_dataset(
        self.get_temp_dir())
    os.remove(os.path.join(image_dir, 'photo_1.jpg'))
    self._refused(annotation_file, image_dir,
                  r'1 of the 3 images .*instances.json lists are not in '
                  r'.*images, e.g. photo_1.jpg')


  @pytest.mark.slow
  def test_convert_each_returns_the_globs_in_job_order(self):
    jobs = []
    for name, images in (('three', 3), ('two', 2)):
      directory = os.path.join(self.get_temp_dir(), name)
      annotation_file, image_dir = testing_utils.own_coco_dataset(
          directory, num_images=images)
      jobs.append({'annotation_file': annotation_file, 'image_dir': image_dir,
                   'output_prefix': os.path.join(directory, 'records'),
                   'include_masks': False})  # The set has boxes only.
    patterns = coco_conversion.convert_each(jobs)
    self.assertEqual(patterns, [f"{j['output_prefix']}-*" for j in jobs])
    self.assertEqual([sum(1 for f in tf.io.gfile.glob(p)
                          for _ in tf.data.TFRecordDataset(f))
                      for p in patterns], [3, 2])

  def test_convert_each_raises_the_first_jobs_refusal(self):
    directory = self.get_temp_dir()
    annotation_file, image_dir = testing_utils.own_coco_dataset(directory)
    jobs = [{'annotation_file': os.path.join(directory, 'nope.json'),
             'image_dir': image_dir,
             'output_prefix': os.path.join(directory, 'a')},
            {'annotation_file': annotation_file,
             'image_dir': os.path.join(directory, 'no_folder'),
             'output_prefix': os.path.join(directory, 'b')}]
    with self.assertRaisesRegex(errors.BadInput, r'nope\.json.*does not '
                                'exist'):
      coco_conversion.convert_each(jobs)
    self.assertEmpty(tf.io.gfile.glob(os.path.join(directory, '[ab]-*')))

if __name__ == '__main__':
  tf.test.main()
