"""A user's own COCO-format dataset trains with no hand-computed class count;
a count that cannot hold its categories is refused before any model."""
import os

import tensorflow as tf

import testing_utils
from backbone_reuse import preflight
from backbone_reuse.configs import resolve
from backbone_reuse.data import coco_tfrecord


class OwnDataTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    directory = os.path.join(tf.compat.v1.test.get_temp_dir(), 'own_data')
    cls.annotation_file, image_dir = testing_utils.own_coco_dataset(
        directory, num_images=6)
    cls.pattern = coco_tfrecord.convert(
        cls.annotation_file, image_dir, os.path.join(directory, 'train'),
        include_masks=False)

  def _params(self, num_classes, annotation_file=None):
    return resolve.experiment_config(
        'backbone_reuse_fasterrcnn_coco', ['configs/smoke/rcnn_tiny.yaml'],
        {'task': {'model': {'num_classes': num_classes},
                  'annotation_file': (self.annotation_file
                                      if annotation_file is None
                                      else annotation_file),
                  'train_data': {'input_path': self.pattern},
                  'validation_data': {'input_path': self.pattern}}},
        root=str(testing_utils.REPO))

  def test_zero_reads_the_class_count_from_the_annotations(self):
    params = self._params(0)
    self.assertEqual(params.task.model.num_classes, 62)  # Ids up to 61.
    found = preflight.check(params, os.path.join(self.get_temp_dir(), 'run'))
    self.assertEqual(found['problems'], [])

  def test_zero_without_annotations_is_refused(self):
    with self.assertRaisesRegex(
        ValueError, r"task.model.num_classes=0 means: read the class count "
        r"from task.annotation_file, which is ''"):
      self._params(0, annotation_file='')
    with self.assertRaisesRegex(
        ValueError, r"task.annotation_file='/no/such.json', which failed"):
      self._params(0, annotation_file='/no/such.json')

  def test_a_count_that_cannot_hold_the_ids_is_refused_in_one_line(self):
    # 20: neither the ids (up to 61) nor the 3 categories + background fit.
    (problem,) = preflight.check_num_classes(self._params(20).task)
    self.assertRegex(problem, r'^task.model.num_classes=20 cannot hold the 3 '
                              r'categories of task.annotation_file=.* \(ids '
                              r'up to 61.*\): set it to 62, or 0')
    # 4 (3 categories + background) would fit a compacted label map, but
    # the records keep the raw ids: their labels are what refuses it.
    (problem,) = preflight.check_num_classes(self._params(4).task)
    self.assertRegex(problem, r'^task.model.num_classes=4 cannot hold class '
                              r'label (23|61) of the training records .*set '
                              r'it to at least \d+ \(62 for the categories')
    self.assertEqual(preflight.check_num_classes(self._params(62).task), [])


if __name__ == '__main__':
  tf.test.main()
