"""Repeat-factor sampling: the factors, the stream, the task option."""
import collections
import json
import math

import tensorflow as tf

import testing_utils
from backbone_reuse.dataloaders import repeat_factor


class RepeatFactorTest(tf.test.TestCase):

  def test_factors_match_gupta_et_al(self):
    fractions = tf.constant([1.0, 0.5, 0.0001, 0.00025])
    # Class 2 is in 0.01% of images: sqrt(0.001 / 0.0001) = sqrt(10).
    self.assertAllClose(repeat_factor.repeat_factors(
        tf.constant([1, 2]), fractions, 0.001), math.sqrt(10))
    self.assertAllClose(repeat_factor.repeat_factors(
        tf.constant([3]), fractions, 0.001), 2.0)
    self.assertAllClose(repeat_factor.repeat_factors(
        tf.constant([1]), fractions, 0.001), 1.0)  # Frequent: no repeat.
    self.assertAllClose(repeat_factor.repeat_factors(
        tf.constant([], tf.int64), fractions, 0.001), 1.0)  # No objects.

  def test_fractions_from_the_training_json(self):
    path = testing_utils.shapes_lvis_data()['train_annotations']
    with open(path) as f:
      dataset = json.load(f)
    images = collections.defaultdict(set)
    for annotation in dataset['annotations']:
      images[annotation['category_id']].add(annotation['image_id'])
    fractions = repeat_factor.class_image_fractions(path)
    self.assertLen(fractions, 41)
    for category_id in range(1, 41):
      self.assertAlmostEqual(fractions[category_id],
                             len(images[category_id]) / 60)

  def test_stream_repeats_images_by_their_rarest_class(self):
    # 400 images of class 1 (frequent), 100 of class 2: r = 2 for class 2.
    classes = [1] * 400 + [2] * 100
    dataset = tf.data.Dataset.from_tensor_slices(
        {'groundtruth_classes': tf.constant(classes, tf.int64)[:, None]})
    fractions = [1.0, 0.8, 0.2]
    out = [int(e['groundtruth_classes'][0]) for e in dataset.apply(
        repeat_factor.sample_fn(fractions, threshold=0.8, seed=1))]
    counts = collections.Counter(out)
    self.assertEqual(counts[1], 400)  # r = max(1, sqrt(0.8 / 0.8)) = 1.
    self.assertEqual(counts[2], 200)  # r = sqrt(0.8 / 0.2) = 2 exactly.
    # Fractional factors round stochastically: expectation r per image.
    fractions = [1.0, 0.8, 0.32]  # Class 2: r = sqrt(2.5) = 1.58.
    again = [int(e['groundtruth_classes'][0]) for e in dataset.apply(
        repeat_factor.sample_fn(fractions, threshold=0.8, seed=1))]
    self.assertBetween(collections.Counter(again)[2], 140, 176)
    same_seed = [int(e['groundtruth_classes'][0]) for e in dataset.apply(
        repeat_factor.sample_fn(fractions, threshold=0.8, seed=1))]
    self.assertEqual(again, same_seed)

  def test_task_option(self):
    data = testing_utils.shapes_lvis_data()
    params = testing_utils.tiny_config(
        'backbone_reuse_maskrcnn_coco', task_overrides={
            'model': {'num_classes': 41},
            'train_data': {
                'input_path': data['train'],
                'repeat_factor_sampling': {
                    'threshold': 0.3,
                    'annotation_file': data['train_annotations']}}})
    task = testing_utils.build_task(params)
    images, labels = next(iter(task.build_inputs(params.task.train_data)))
    self.assertEqual(images.shape, (2, 64, 64, 3))
    self.assertNotEmpty(labels['gt_classes'].numpy()[
        labels['gt_classes'].numpy() > 0])
    params.override({'task': {'train_data': {'repeat_factor_sampling': {
        'annotation_file': ''}}}})
    with self.assertRaisesRegex(ValueError, 'needs threshold >= 0 and, when '
                                '> 0, annotation_file'):
      params.validate()
