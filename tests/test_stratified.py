"""Stratified per-class analysis: counts, frequency/size means, smoothing."""
import json
import math
import os

import numpy as np
import tensorflow as tf

import lvis_testing
from backbone_reuse.evaluation import lvis_metrics
from backbone_reuse.evaluation import stratified


class SmoothingTest(tf.test.TestCase):

  def test_matches_hand_computed_case(self):
    # At 0: weights 1 and exp(-1/2); (0 * 1 + 1 * e^-0.5) / (1 + e^-0.5).
    w = math.exp(-0.5)
    expected_at_0 = w / (1 + w)
    # At 0.5 both points weigh the same: the plain mean.
    smoothed = stratified.gaussian_smooth([0.0, 1.0], [0.0, 1.0], 1.0,
                                          [0.0, 0.5, 1.0])
    self.assertAllClose(smoothed, [expected_at_0, 0.5, 1 - expected_at_0])
    self.assertAlmostEqual(expected_at_0, 0.3775406688, places=9)

  def test_narrow_kernel_returns_the_nearest_value(self):
    smoothed = stratified.gaussian_smooth([1.0, 2.0, 3.0], [5.0, 7.0, 9.0],
                                          0.01, [1.0, 2.0, 3.0])
    self.assertAllClose(smoothed, [5.0, 7.0, 9.0])


class StratifyTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir() + '/stratified'
    _, cls.ground_truth = lvis_testing.federated_split(root)
    with open(os.path.join(root, 'train', 'annotations.json')) as f:
      cls.training_set = json.load(f)
    cls.metrics = lvis_metrics.evaluate(
        lvis_metrics.load_ground_truth(cls.ground_truth),
        lvis_testing.detections(cls.ground_truth), 'bbox')

  def test_classes_carry_training_counts_and_ap(self):
    result = stratified.stratify(self.metrics, self.ground_truth,
                                 self.training_set)
    self.assertLen(result['classes'], 40)
    counts = [c['train_annotations'] for c in result['classes']]
    self.assertEqual(counts, sorted(counts))
    first = result['classes'][0]
    self.assertEqual(first['train_annotations'], sum(
        1 for a in self.training_set['annotations']
        if a['category_id'] == first['id']))
    for record in result['classes']:
      self.assertEqual(record['AP'], self.metrics['per_class'][record['name']])
      self.assertEqual(record['APs'],
                       self.metrics['per_class_by_area'][record['name']][
                           'small'])
    # Without a training set, LVIS categories' instance_count is used (the
    # val split's own here, so the numbers differ from the training ones).
    own = stratified.stratify(self.metrics, self.ground_truth)
    by_id = {c['id']: c for c in self.ground_truth['categories']}
    for record in own['classes']:
      self.assertEqual(record['train_annotations'],
                       by_id[record['id']]['instance_count'])

  def test_group_means_equal_the_lvis_api_groups(self):
    result = stratified.stratify(self.metrics, self.ground_truth,
                                 self.training_set)
    for group in 'rcf':
      self.assertAllClose(result['by_frequency'][group]['AP'],
                          self.metrics['AP' + group], atol=1e-6)
    self.assertEqual(sum(g['classes'] for g in
                         result['by_frequency'].values()), 40)

  def test_plot_draws_the_smoothed_curves(self):
    result = stratified.stratify(self.metrics, self.ground_truth,
                                 self.training_set)
    path = os.path.join(self.get_temp_dir(), 'per_class.png')
    drawn = stratified.plot_per_class({'run': result}, path)
    self.assertTrue(os.path.getsize(path) > 1000)
    x, y = drawn['run']
    points = [(c['train_annotations'], 100 * c['AP'])
              for c in result['classes'] if c['AP'] > -1]
    self.assertAllClose(x[[0, -1]], [min(p[0] for p in points),
                                     max(p[0] for p in points)])
    self.assertBetween(float(np.min(y)), min(p[1] for p in points),
                       max(p[1] for p in points))
