"""TFDS `coco/2017` for the box-only R-CNNs and RetinaNet: labels as COCO's category ids
(0 stays background), read through TFDS's own reader without a download."""
import numpy as np
import pytest
from official.core import exp_factory
from official.modeling import hyperparams
from official.vision.dataloaders import tfds_detection_decoders
from official.vision.dataloaders import tfds_factory
import tensorflow as tf
import tensorflow_datasets as tfds

import testing_utils
from backbone_reuse.dataloaders import coco_tfds

_SIGNATURE = {
    'image': tf.TensorSpec([None, None, 3], tf.uint8),
    'image/id': tf.TensorSpec([], tf.int64),
    'image/filename': tf.TensorSpec([], tf.string),
    'objects': {
        'id': tf.TensorSpec([None], tf.int64),
        'area': tf.TensorSpec([None], tf.int64),
        'bbox': tf.TensorSpec([None, 4], tf.float32),
        'is_crowd': tf.TensorSpec([None], tf.bool),
        'label': tf.TensorSpec([None], tf.int64),
    },
}
# TFDS label -> COCO id: person, toothbrush (the last), stop sign (after
# COCO's first gap at 12).
_MODEL_GARDEN_TFDS_LOOKUP = tfds_factory.get_detection_decoder
_LABELS = [0, 79, 11]
_IDS = [1, 90, 13]


def _tfds_like(count=4):
  """Examples as TFDS's coco builder stores them (0-based labels,
  normalised yxyx boxes)."""

  def examples():
    rng = np.random.default_rng(0)
    for index in range(count):
      yield {
          'image': rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
          'image/id': np.int64(100 + index),
          'image/filename': f'{100 + index:012d}.jpg'.encode(),
          'objects': {
              'id': np.arange(3, dtype=np.int64),
              'area': np.full(3, 256, np.int64),
              'bbox': np.array([[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8],
                                [0.5, 0.5, 0.7, 0.9]], np.float32),
              'is_crowd': np.zeros(3, bool),
              'label': np.array(_LABELS, np.int64),
          },
      }
  return tf.data.Dataset.from_generator(examples, output_signature=_SIGNATURE)


class CocoTfdsTest(tf.test.TestCase):

  def test_the_80_ids(self):
    ids = coco_tfds.COCO_CATEGORY_IDS
    self.assertLen(ids, 80)
    self.assertEqual(list(ids), sorted(set(ids)))
    self.assertEqual((ids[0], ids[-1]), (1, 90))
    # COCO's 10 unused ids below 91.
    self.assertEqual(sorted(set(range(1, 91)) - set(ids)),
                     [12, 26, 29, 30, 45, 66, 68, 69, 71, 83])

  def test_decodes_as_model_garden_with_coco_ids(self):
    example = next(iter(_tfds_like()))
    ours = coco_tfds.CocoTfdsDecoder().decode(example)
    theirs = tfds_detection_decoders.MSCOCODecoder().decode(example)
    self.assertAllEqual(theirs['groundtruth_classes'], _LABELS)
    self.assertAllEqual(ours['groundtruth_classes'], _IDS)
    for key in theirs:
      if key != 'groundtruth_classes':
        self.assertAllEqual(ours[key], theirs[key], msg=key)

  @pytest.mark.slow
  def test_faster_rcnn_reads_tfds_coco(self):
    params = exp_factory.get_exp_config('backbone_reuse_fasterrcnn_coco')
    params = hyperparams.override_params_dict(
        params, str(testing_utils.REPO / 'configs' / 'smoke' /
                    'rcnn_tiny.yaml'), is_strict=True)
    params.override({'task': {
        'annotation_file': testing_utils.toy_data()['val_annotations'],
        'model': {'num_classes': 91},
        'train_data': {'input_path': '', 'tfds_name': 'coco/2017',
                       'tfds_split': 'train'}}})
    params.validate()
    task = testing_utils.build_task(params)
    dataset = _tfds_like()
    with tfds.testing.mock_data(as_dataset_fn=lambda *a, **k: dataset):
      _, labels = next(iter(task.build_inputs(params.task.train_data)))
    classes = labels['gt_classes'].numpy()
    self.assertCountEqual(set(classes[classes > 0].tolist()), _IDS)

  def test_mask_rcnn_with_tfds_coco_is_refused(self):
    params = exp_factory.get_exp_config('backbone_reuse_maskrcnn_coco')
    params.override({'task': {'validation_data': {'tfds_name': 'coco/2017'}}})
    with self.assertRaisesRegex(
        ValueError, r"task.validation_data.tfds_name='coco/2017' carries no "
        r'instance masks; task.model.include_mask=True \(Mask R-CNN\) needs '
        'them'):
      params.validate()

  def test_retinanet_reads_tfds_coco_with_coco_ids(self):
    params = exp_factory.get_exp_config('backbone_reuse_retinanet_coco')
    params.override({'task': {
        'model': {'num_classes': 91, 'input_size': [64, 64, 3],
                  'min_level': 3, 'max_level': 5},
        'train_data': {'input_path': '', 'tfds_name': 'coco/2017',
                       'tfds_split': 'train', 'global_batch_size': 2}}})
    params.validate()
    task = testing_utils.build_task(params)
    dataset = _tfds_like()
    with tfds.testing.mock_data(as_dataset_fn=lambda *a, **k: dataset):
      _, labels = next(iter(task.build_inputs(params.task.train_data)))
    # Every matched anchor's class target is one of the three COCO ids
    # (unmatched ones are -1); with TFDS's own indices they would be 0, 79,
    # 11.
    targets = np.concatenate([t.numpy().ravel()
                              for t in labels['cls_targets'].values()])
    self.assertCountEqual(set(targets[targets >= 0].tolist()), _IDS)
    # The swap of Model Garden's decoder lookup ends with the call.
    self.assertIs(tfds_factory.get_detection_decoder,
                  _MODEL_GARDEN_TFDS_LOOKUP)

  def test_retinanet_with_tfds_lvis_is_refused(self):
    params = exp_factory.get_exp_config('backbone_reuse_retinanet_coco')
    params.override({'task': {'train_data': {'tfds_name': 'lvis'}}})
    with self.assertRaisesRegex(
        ValueError, r"task.train_data.tfds_name='lvis': the RetinaNet input "
        "reads TFRecords and TFDS 'coco'"):
      params.validate()


if __name__ == '__main__':
  tf.test.main()
