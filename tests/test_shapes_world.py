"""The Shapes world generator: determinism, COCO/LVIS validity, long tail."""
import collections
import filecmp
import json
import os

import lvis
import numpy as np
from official.vision.dataloaders import tf_example_decoder
from pycocotools import coco
import tensorflow as tf

from backbone_reuse.data import coco_conversion
from backbone_reuse.shapes import world as shapes_world

_WEIGHTS = shapes_world.long_tail_weights(0)


class ShapesWorldTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tf.compat.v1.test.get_temp_dir() + '/shapes_world'
    cls.train_json, cls.train_images, cls.frequencies = (
        shapes_world.write_detection_split(cls.root + '/train', 120, 5,
                                           _WEIGHTS))
    cls.val_json, cls.val_images, _ = shapes_world.write_detection_split(
        cls.root + '/val', 60, 6, _WEIGHTS, cls.frequencies)

  def test_vocabulary(self):
    self.assertLen(shapes_world.CLASSES, 40)
    self.assertLen(set(shapes_world.CLASSES), 40)

  def test_same_seed_gives_identical_json(self):
    again, _, _ = shapes_world.write_detection_split(
        self.get_temp_dir() + '/again', 120, 5, _WEIGHTS)
    self.assertTrue(filecmp.cmp(self.train_json, again, shallow=False))
    other, _, _ = shapes_world.write_detection_split(
        self.get_temp_dir() + '/other', 120, 7, _WEIGHTS)
    self.assertFalse(filecmp.cmp(self.train_json, other, shallow=False))

  def test_boxes_and_masks_consistent_with_images(self):
    for path in (self.train_json, self.val_json):
      dataset = coco.COCO(path)
      for annotation in dataset.loadAnns(dataset.getAnnIds()):
        image = dataset.imgs[annotation['image_id']]
        x, y, w, h = annotation['bbox']
        self.assertGreaterEqual(x, 0)
        self.assertGreaterEqual(y, 0)
        self.assertLessEqual(x + w, image['width'])
        self.assertLessEqual(y + h, image['height'])
        mask = dataset.annToMask(annotation)
        self.assertEqual(mask.shape, (image['height'], image['width']))
        self.assertEqual(mask.sum(), annotation['area'])
        ys, xs = np.nonzero(mask)
        self.assertEqual([xs.min(), ys.min(), xs.max() - xs.min() + 1,
                          ys.max() - ys.min() + 1], [x, y, w, h])
      for image in dataset.loadImgs(dataset.getImgIds()):
        with tf.io.gfile.GFile(os.path.join(
            os.path.dirname(path), 'images', image['file_name']), 'rb') as f:
          shape = tf.io.decode_jpeg(f.read()).shape
        self.assertEqual(shape, (image['height'], image['width'], 3))

  def test_lvis_api_reads_it(self):
    dataset = lvis.LVIS(self.val_json)
    self.assertLen(dataset.get_cat_ids(), 40)
    image = dataset.load_imgs([1])[0]
    present = {a['category_id'] for a in dataset.load_anns(
        dataset.get_ann_ids(img_ids=[1]))}
    self.assertEqual(set(image['neg_category_ids']) | present,
                     set(range(1, 41)))
    self.assertEmpty(set(image['neg_category_ids']) & present)
    self.assertEqual(image['not_exhaustive_category_ids'], [])

  def test_frequency_groups_follow_training_image_counts(self):
    with open(self.train_json) as f:
      train = json.load(f)
    images_per_class = collections.defaultdict(set)
    for annotation in train['annotations']:
      images_per_class[annotation['category_id']].add(annotation['image_id'])
    for category in train['categories']:
      count = len(images_per_class[category['id']])
      self.assertGreater(count, 0, msg=category['name'])
      self.assertEqual(category['image_count'], count)
      expected = 'r' if count <= 10 else ('c' if count <= 50 else 'f')
      self.assertEqual(category['frequency'], expected)
    # Long tail: the most frequent class shows in many more images.
    counts = sorted(len(v) for v in images_per_class.values())
    self.assertGreater(counts[-1], 5 * counts[0])
    with open(self.val_json) as f:
      val = json.load(f)
    self.assertEqual({a['category_id'] for a in val['annotations']},
                     set(range(1, 41)))
    self.assertEqual({c['id']: c['frequency'] for c in val['categories']},
                     {c['id']: c['frequency'] for c in train['categories']})

  def test_converter_round_trips_annotations(self):
    pattern = coco_conversion.convert(self.val_json, self.val_images,
                                    self.get_temp_dir() + '/val')
    decoder = tf_example_decoder.TfExampleDecoder(include_mask=True)
    dataset = coco.COCO(self.val_json)
    decoded = 0
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)):
      example = decoder.decode(record)
      image_id = int(example['source_id'])
      annotations = dataset.loadAnns(dataset.getAnnIds(imgIds=[image_id]))
      self.assertAllEqual(example['groundtruth_classes'],
                          [a['category_id'] for a in annotations])
      boxes = example['groundtruth_boxes'].numpy() * 128  # ymin,xmin,ymax,xmax
      expected = [[y, x, y + h, x + w]
                  for x, y, w, h in (a['bbox'] for a in annotations)]
      self.assertAllClose(boxes, expected, atol=1e-3)
      masks = example['groundtruth_instance_masks'].numpy() > 0.5
      for mask, annotation in zip(masks, annotations):
        self.assertAllEqual(mask, dataset.annToMask(annotation).astype(bool))
      decoded += 1
    self.assertEqual(decoded, 60)

  def test_classification_records(self):
    pattern = shapes_world.write_classification_tfrecords(
        self.get_temp_dir() + '/cls/train', 80, seed=1)
    labels = []
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)):
      example = tf.train.Example.FromString(record.numpy())
      feature = example.features.feature
      image = tf.io.decode_jpeg(feature['image/encoded'].bytes_list.value[0])
      self.assertEqual(image.shape, (64, 64, 3))
      labels.append(feature['image/class/label'].int64_list.value[0])
    self.assertEqual(collections.Counter(labels),
                     {label: 2 for label in range(40)})


if __name__ == '__main__':
  tf.test.main()
