"""COCO metrics with per-class and rare/common/frequent AP."""
import numpy as np
from pycocotools import coco
import tensorflow as tf

from backbone_reuse.shapes import world as shapes_world
from backbone_reuse.evaluation import coco_metrics


def _as_detections(ground_truth, iou_type):
  detections = []
  for annotation in ground_truth.loadAnns(ground_truth.getAnnIds()):
    detection = {'image_id': annotation['image_id'],
                 'category_id': annotation['category_id'],
                 'bbox': annotation['bbox'], 'score': 1.0}
    if iou_type == 'segm':
      rle = ground_truth.annToRLE(annotation)
      detection['segmentation'] = dict(rle, counts=rle['counts'].decode())
    detections.append(detection)
  return detections


class CocoMetricsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    weights = shapes_world.long_tail_weights(0)
    root = tf.compat.v1.test.get_temp_dir() + '/metrics'
    _, _, frequencies = shapes_world.write_detection_split(
        root + '/train', 100, 1, weights)
    path, _, _ = shapes_world.write_detection_split(
        root + '/val', 50, 2, weights, frequencies)
    cls.ground_truth = coco.COCO(path)

  def test_perfect_detections_score_one_everywhere(self):
    for iou_type in ('bbox', 'segm'):
      metrics = coco_metrics.evaluate(
          self.ground_truth, _as_detections(self.ground_truth, iou_type),
          iou_type)
      self.assertAllClose([metrics[k] for k in ('AP', 'AP50', 'AP75')],
                          [1.0, 1.0, 1.0])
      self.assertLen(metrics['per_class'], 40)
      self.assertAllClose(list(metrics['per_class'].values()),
                          np.ones(40))
      groups = {c['frequency'] for c in self.ground_truth.cats.values()}
      for letter in groups:
        self.assertAllClose(metrics[coco_metrics.GROUPS[letter]], 1.0)

  def test_detections_are_not_modified(self):
    # pycocotools' loadRes adds a polygon `segmentation` to box results;
    # the caller's list (drawn or written afterwards) must stay as it was.
    detections = _as_detections(self.ground_truth, 'bbox')
    before = [dict(d) for d in detections]
    coco_metrics.evaluate(self.ground_truth, detections, 'bbox')
    self.assertEqual(detections, before)
    self.assertNotIn('segmentation', detections[0])

  def test_ground_truth_without_info_is_evaluated(self):
    # COCO-format files may leave `info` out; pycocotools' loadRes needs it.
    bare = coco.COCO()
    bare.dataset = {k: v for k, v in self.ground_truth.dataset.items()
                    if k != 'info'}
    bare.createIndex()
    metrics = coco_metrics.evaluate(bare, _as_detections(bare, 'bbox'),
                                    'bbox')
    self.assertAllClose(metrics['AP'], 1.0)

  def test_missing_class_counts_as_zero_in_its_group(self):
    rare = sorted(c['id'] for c in self.ground_truth.cats.values()
                  if c['frequency'] == 'r')
    self.assertNotEmpty(rare)
    dropped = rare[0]
    detections = [d for d in _as_detections(self.ground_truth, 'bbox')
                  if d['category_id'] != dropped]
    metrics = coco_metrics.evaluate(self.ground_truth, detections, 'bbox')
    name = self.ground_truth.cats[dropped]['name']
    self.assertEqual(metrics['per_class'][name], 0.0)
    self.assertAllClose(metrics['APr'], 1.0 - 1.0 / len(rare))
    self.assertAllClose(metrics['APf'], 1.0)
    self.assertAllClose(metrics['AP'], 39 / 40)

  def test_no_detections(self):
    metrics = coco_metrics.evaluate(self.ground_truth, [], 'bbox')
    self.assertEqual(metrics['AP'], 0.0)
    self.assertEqual(metrics['APr'], 0.0)


if __name__ == '__main__':
  tf.test.main()
