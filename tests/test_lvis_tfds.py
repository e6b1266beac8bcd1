"""TFDS `lvis` input: same decoded examples as our TFRecords, full pipeline."""
import glob
import os

import numpy as np
from official.core import exp_factory
from official.modeling import hyperparams
from official.vision.dataloaders import tf_example_decoder
from pycocotools import coco
import tensorflow as tf
import tensorflow_datasets as tfds

import testing_utils
from backbone_reuse.dataloaders import lvis_tfds

_SIGNATURE = {
    'image': tf.TensorSpec([None, None, 3], tf.uint8),
    'image/id': tf.TensorSpec([], tf.int64),
    'neg_category_ids': tf.TensorSpec([None], tf.int64),
    'not_exhaustive_category_ids': tf.TensorSpec([None], tf.int64),
    'objects': {
        'id': tf.TensorSpec([None], tf.int64),
        'area': tf.TensorSpec([None], tf.int64),
        'bbox': tf.TensorSpec([None, 4], tf.float32),
        'label': tf.TensorSpec([None], tf.int64),
        'segmentation': tf.TensorSpec([None, None, None, 1], tf.uint8),
    },
}


def _tfds_like(annotation_file, image_ids):
  """Shapes images as TFDS's lvis builder stores LVIS (label = id - 1,
  normalised yxyx boxes, 0/255 masks)."""
  ground_truth = coco.COCO(annotation_file)
  image_dir = os.path.join(os.path.dirname(annotation_file), 'images')

  def examples():
    for image_id in image_ids:
      info = ground_truth.imgs[image_id]
      annotations = ground_truth.loadAnns(
          ground_truth.getAnnIds(imgIds=[image_id]))
      height, width = info['height'], info['width']
      yield {
          # TFDS decodes its JPEGs with TensorFlow, as Model Garden does.
          'image': tf.io.decode_jpeg(tf.io.read_file(os.path.join(
              image_dir, info['file_name']))).numpy(),
          'image/id': np.int64(image_id),
          'neg_category_ids': np.array(
              [c - 1 for c in info['neg_category_ids']], np.int64),
          'not_exhaustive_category_ids': np.zeros([0], np.int64),
          'objects': {
              'id': np.array([a['id'] for a in annotations], np.int64),
              'area': np.array([int(a['area']) for a in annotations],
                               np.int64),
              'bbox': np.array([[y / height, x / width, (y + h) / height,
                                 (x + w) / width]
                                for x, y, w, h in (a['bbox']
                                                   for a in annotations)],
                               np.float32),
              'label': np.array([a['category_id'] - 1 for a in annotations],
                                np.int64),
              'segmentation': (np.stack([ground_truth.annToMask(a) * 255
                                         for a in annotations])[..., None]
                               .astype(np.uint8)),
          },
      }
  return tf.data.Dataset.from_generator(examples, output_signature=_SIGNATURE)


class LvisTfdsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = testing_utils.shapes_lvis_data()
    cls.image_ids = list(range(1, 7))

  def test_decodes_like_our_tfrecords(self):
    records = {}
    decoder = tf_example_decoder.TfExampleDecoder(include_mask=True)
    for serialized in tf.data.TFRecordDataset(
        sorted(glob.glob(self.data['train']))):
      decoded = decoder.decode(serialized)
      records[int(decoded['source_id'].numpy())] = decoded
    tfds_decoder = lvis_tfds.LvisTfdsDecoder()
    count = 0
    for example in _tfds_like(self.data['train_annotations'],
                              self.image_ids):
      ours = tfds_decoder.decode(example)
      image_id = int(ours['source_id'].numpy())
      reference = records[image_id]
      self.assertAllEqual(ours['image'], reference['image'])
      self.assertAllEqual(ours['groundtruth_classes'],
                          reference['groundtruth_classes'])
      self.assertAllClose(ours['groundtruth_boxes'],
                          reference['groundtruth_boxes'], atol=1e-6)
      self.assertAllEqual(ours['groundtruth_instance_masks'],
                          reference['groundtruth_instance_masks'])
      self.assertFalse(ours['groundtruth_is_crowd'].numpy().any())
      count += 1
    self.assertEqual(count, len(self.image_ids))

  def test_task_reads_tfds_lvis(self):
    params = exp_factory.get_exp_config('backbone_reuse_maskrcnn_lvis')
    params = hyperparams.override_params_dict(
        params, str(testing_utils.REPO / 'configs' / 'smoke' /
                    'lvis_tiny.yaml'), is_strict=True)
    params.override({'task': {
        'annotation_file': self.data['val_annotations'],
        'train_data': {'input_path': '', 'tfds_name': 'lvis',
                       'tfds_split': 'train'}}})
    params.validate()
    task = testing_utils.build_task(params)
    dataset = _tfds_like(self.data['train_annotations'], self.image_ids)
    # TFDS's own reader, with as_dataset answered by our examples (no
    # download): the path a user with LVIS in TFDS takes.
    with tfds.testing.mock_data(as_dataset_fn=lambda *a, **k: dataset):
      images, labels = next(iter(task.build_inputs(params.task.train_data)))
    self.assertEqual(images.shape, (2, 64, 64, 3))
    classes = labels['gt_classes'].numpy()
    self.assertNotEmpty(classes[classes > 0])
    self.assertTrue((classes[classes > 0] <= 40).all())

  def test_other_tfds_datasets_are_refused(self):
    params = exp_factory.get_exp_config('backbone_reuse_maskrcnn_coco')
    params.override({'task': {'train_data': {'tfds_name': 'voc/2007'}}})
    with self.assertRaisesRegex(ValueError, "tfds_name='voc/2007': the R-CNN "
                                'input reads TFRecords and these TFDS '
                                'datasets: lvis, coco'):
      params.validate()
