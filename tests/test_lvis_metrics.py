"""LVIS metrics: the LVIS API's numbers, its federated rules, numpy breakage."""
import collections

from lvis import eval as lvis_eval
from lvis import lvis as lvis_dataset
from lvis import results as lvis_results
import numpy as np
import tensorflow as tf

from backbone_reuse.evaluation import lvis_metrics
import lvis_testing


def _direct_api_run(path, detections, iou_type):
  """The API as its README runs it, from files (with the numpy alias)."""
  ground_truth = lvis_dataset.LVIS(path)
  results = lvis_results.LVISResults(ground_truth, detections)
  evaluator = lvis_eval.LVISEval(ground_truth, results, iou_type)
  with lvis_metrics.numpy_float_alias():
    evaluator.run()
  return evaluator.results


def _tiny_ground_truth(image_2_negatives=(), image_2_not_exhaustive=(),
                       image_2_objects=False):
  """Two 100x100 images; image 1 has one category-1 object at (10, 10)."""
  def box_annotation(annotation_id, image_id, x):
    return {'id': annotation_id, 'image_id': image_id, 'category_id': 1,
            'bbox': [x, 10.0, 20.0, 20.0], 'area': 400.0,
            'segmentation': [[x, 10, x + 20, 10, x + 20, 30, x, 30]]}
  annotations = [box_annotation(1, 1, 10.0)]
  if image_2_objects:
    annotations.append(box_annotation(2, 2, 50.0))
  return {
      'images': [
          {'id': 1, 'height': 100, 'width': 100, 'neg_category_ids': [2],
           'not_exhaustive_category_ids': []},
          {'id': 2, 'height': 100, 'width': 100,
           'neg_category_ids': list(image_2_negatives),
           'not_exhaustive_category_ids': list(image_2_not_exhaustive)}],
      'annotations': annotations,
      'categories': [{'id': 1, 'name': 'one', 'frequency': 'r'},
                     {'id': 2, 'name': 'two', 'frequency': 'f'}],
  }


def _box(image_id, x, score, category_id=1):
  return {'image_id': image_id, 'category_id': category_id,
          'bbox': [x, 10.0, 20.0, 20.0], 'score': score}


class NumpyFloatAliasTest(tf.test.TestCase):

  def test_api_needs_the_alias_exactly_when_numpy_lacks_float(self):
    path, ground_truth = lvis_testing.federated_split(self.get_temp_dir())
    detections = lvis_testing.detections(ground_truth)
    evaluator = lvis_eval.LVISEval(path, detections[:50], 'bbox')
    if 'float' in vars(np):  # An old numpy: the API runs as published.
      evaluator.run()
      self.assertGreaterEqual(evaluator.results['AP'], 0.0)
    else:
      with self.assertRaisesRegex(AttributeError, 'float'):
        evaluator.run()

  def test_alias_is_scoped_to_lvis_eval(self):
    # numpy itself never gains the alias, inside the context or after it
    # (a global `np.float = float` would leak into every other module).
    had_float = 'float' in vars(np)
    with lvis_metrics.numpy_float_alias():
      self.assertIs(lvis_eval.np.float, float)
      self.assertIs(lvis_eval.np.cumsum, np.cumsum)
      self.assertEqual('float' in vars(np), had_float)
    self.assertIs(lvis_eval.np, np)
    self.assertEqual('float' in vars(np), had_float)


class LvisMetricsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir() + '/lvis_metrics'
    cls.path, cls.ground_truth = lvis_testing.federated_split(root)
    cls.detections = lvis_testing.detections(cls.ground_truth)

  def test_ground_truth_is_federated_and_long_tailed(self):
    images = self.ground_truth['images']
    self.assertNotEmpty([i for i in images
                         if i['not_exhaustive_category_ids']])
    present = collections.defaultdict(set)
    for annotation in self.ground_truth['annotations']:
      present[annotation['image_id']].add(annotation['category_id'])
    unverified = [i for i in images if len(i['neg_category_ids']) +
                  len(present[i['id']]) < 40]
    self.assertNotEmpty(unverified)
    self.assertEmpty(present[images[-1]['id']])
    self.assertEqual({c['frequency'] for c in self.ground_truth['categories']},
                     {'r', 'c', 'f'})
    per_image = collections.Counter(d['image_id'] for d in self.detections)
    self.assertGreater(max(per_image.values()), 300)

  def test_summary_equals_the_lvis_api(self):
    for iou_type in ('bbox', 'segm'):
      ours = lvis_metrics.evaluate(
          lvis_metrics.load_ground_truth(self.ground_truth), self.detections,
          iou_type)
      api = _direct_api_run(self.path, self.detections, iou_type)
      self.assertEqual(set(api) - set(ours), set())
      for name, value in api.items():
        self.assertAllClose(ours[name], value, atol=1e-6, rtol=0,
                            msg=f'{iou_type} {name}')
      self.assertGreater(ours['AP'], 0.02)  # Not a degenerate case.

  def test_per_class_ap_averages_to_the_api_groups_and_sizes(self):
    metrics = lvis_metrics.evaluate(
        lvis_metrics.load_ground_truth(self.ground_truth), self.detections,
        'bbox')
    frequency = {c['name']: c['frequency']
                 for c in self.ground_truth['categories']}
    for letter in 'rcf':
      values = [ap for name, ap in metrics['per_class'].items()
                if frequency[name] == letter and ap > -1]
      self.assertAllClose(np.mean(values), metrics['AP' + letter], atol=1e-6)
    for area, name in (('small', 'APs'), ('medium', 'APm')):
      values = [by_area[area] for by_area in
                metrics['per_class_by_area'].values() if by_area[area] > -1]
      # The API averages over (IoU, recall, class) cells; classes have the
      # same number of cells, so the mean of class means is the same.
      self.assertAllClose(np.mean(values), metrics[name], atol=1e-6)

  def test_inputs_are_not_modified(self):
    detections = lvis_testing.detections(self.ground_truth)
    lvis_metrics.evaluate(lvis_metrics.load_ground_truth(self.ground_truth),
                          detections, 'segm')
    self.assertEqual(detections, self.detections)


class FederatedRulesTest(tf.test.TestCase):
  """Hand-computed cases: each rule changes AP the way LVIS defines it."""

  def _ap(self, ground_truth, detections, **kwargs):
    return lvis_metrics.evaluate(lvis_metrics.load_ground_truth(ground_truth),
                                 detections, 'bbox', **kwargs)['per_class']

  def test_false_positive_counts_only_where_the_category_is_verified(self):
    detections = [_box(1, 10.0, 0.5), _box(2, 50.0, 0.9)]
    # Image 2 does not say whether category 1 is there: the detection there
    # is not judged.
    self.assertAllClose(self._ap(_tiny_ground_truth(), detections)['one'],
                        1.0)
    # Image 2 verifies category 1 absent: a false positive ranked first
    # halves the precision at the only recall level.
    self.assertAllClose(
        self._ap(_tiny_ground_truth(image_2_negatives=[1]),
                 detections)['one'], 0.5)

  def test_unmatched_detection_of_a_not_exhaustive_category_is_ignored(self):
    detections = [_box(1, 10.0, 0.5), _box(2, 50.0, 0.4), _box(2, 5.0, 0.9)]
    exhaustive = self._ap(_tiny_ground_truth(image_2_objects=True),
                          detections)['one']
    not_exhaustive = self._ap(
        _tiny_ground_truth(image_2_objects=True, image_2_not_exhaustive=[1]),
        detections)['one']
    # Ranks: FP(0.9), TP(0.5), TP(0.4) -> precision 1/2, 2/3: AP 2/3.
    self.assertAllClose(exhaustive, 2 / 3)
    self.assertAllClose(not_exhaustive, 1.0)

  def test_only_the_top_scoring_detections_per_image_count(self):
    ground_truth = _tiny_ground_truth()
    clutter = [_box(1, 60.0, 0.9) for _ in range(3)]
    detections = clutter + [_box(1, 10.0, 0.1)]
    self.assertAllClose(self._ap(ground_truth, detections,
                                 max_detections=3)['one'], 0.0)
    self.assertAllClose(self._ap(ground_truth, detections,
                                 max_detections=4)['one'], 0.25)

  def test_no_detections_score_zero_where_there_is_ground_truth(self):
    metrics = lvis_metrics.evaluate(
        lvis_metrics.load_ground_truth(_tiny_ground_truth()), [], 'bbox')
    self.assertEqual(metrics['AP'], 0.0)
    self.assertEqual(metrics['APr'], 0.0)
    self.assertEqual(metrics['APf'], -1.0)  # Category 2 has no objects.
    self.assertEqual(metrics['per_class'], {'one': 0.0, 'two': -1.0})
