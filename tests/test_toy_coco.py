"""The toy COCO-format set: deterministic, COCO-readable, fully converted."""
import filecmp
import os

from pycocotools import coco
import tensorflow as tf

from backbone_reuse.shapes import toy_coco
import testing_utils


class ToyCocoTest(tf.test.TestCase):

  def test_same_seed_same_files(self):
    a, _ = toy_coco.write_coco_dataset(self.get_temp_dir() + '/a', 4, seed=3)
    b, _ = toy_coco.write_coco_dataset(self.get_temp_dir() + '/b', 4, seed=3)
    c, _ = toy_coco.write_coco_dataset(self.get_temp_dir() + '/c', 4, seed=4)
    self.assertTrue(filecmp.cmp(a, b, shallow=False))
    self.assertFalse(filecmp.cmp(a, c, shallow=False))

  def test_pycocotools_reads_boxes_and_masks(self):
    annotation_file, image_dir = toy_coco.write_coco_dataset(
        self.get_temp_dir(), 6, image_size=64, seed=0)
    dataset = coco.COCO(annotation_file)
    self.assertLen(dataset.getImgIds(), 6)
    self.assertEqual([c['name'] for c in dataset.loadCats(dataset.getCatIds())],
                     list(toy_coco.CLASSES))
    for annotation in dataset.loadAnns(dataset.getAnnIds()):
      mask = dataset.annToMask(annotation)
      x, y, w, h = annotation['bbox']
      self.assertGreater(mask.sum(), 0.3 * w * h)
      ys, xs = mask.nonzero()
      self.assertGreaterEqual(xs.min(), int(x) - 1)
      self.assertLessEqual(xs.max(), int(x + w) + 1)
      self.assertGreaterEqual(ys.min(), int(y) - 1)
      self.assertLessEqual(ys.max(), int(y + h) + 1)
    for image in dataset.loadImgs(dataset.getImgIds()):
      self.assertTrue(os.path.isfile(os.path.join(image_dir,
                                                  image['file_name'])))

  def test_every_image_becomes_a_record(self):
    data = testing_utils.toy_data()
    for split, (num_images, _) in toy_coco._SPLITS.items():  # pylint: disable=protected-access
      files = tf.io.gfile.glob(data[split])
      self.assertNotEmpty(files)
      records = sum(1 for _ in tf.data.TFRecordDataset(files))
      self.assertEqual(records, num_images, msg=split)


if __name__ == '__main__':
  tf.test.main()
