"""python -m backbone_reuse.tools.evaluate: one JSON object, or exit 2."""
import json
import os

from pycocotools import coco
import pytest
import tensorflow as tf

import lvis_testing
import testing_utils
from backbone_reuse import errors
from backbone_reuse.evaluation import coco_metrics
from backbone_reuse.evaluation import lvis_metrics


def _run(*args):
  return testing_utils.run_module('backbone_reuse.tools.evaluate', *args)


class EvaluateCliTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tf.compat.v1.test.get_temp_dir() + '/evaluate_cli'
    cls.ground_truth_file, cls.ground_truth = lvis_testing.federated_split(
        cls.root)
    cls.detections = lvis_testing.detections(cls.ground_truth)
    cls.detections_file = os.path.join(cls.root, 'detections.json')
    cls._write(cls.detections_file, cls.detections)

  @classmethod
  def _write(cls, name, value):
    path = os.path.join(cls.root, name)
    with open(path, 'w') as f:
      f.write(value if isinstance(value, str) else json.dumps(value))
    return path

  @pytest.mark.slow
  def test_lvis_prints_one_json_object_equal_to_the_api(self):
    for iou_type in ('bbox', 'segm'):
      result = _run(f'--annotation_file={self.ground_truth_file}',
                    f'--detections_file={self.detections_file}',
                    '--dataset=lvis', f'--iou_type={iou_type}')
      self.assertEqual(result.returncode, 0, result.stderr[-2000:])
      self.assertLen(result.stdout.strip().splitlines(), 1)
      printed = json.loads(result.stdout)
      expected = lvis_metrics.evaluate(
          lvis_metrics.load_ground_truth(self.ground_truth), self.detections,
          iou_type)
      for name in lvis_metrics.SUMMARY:
        self.assertAllClose(printed[name], expected[name], atol=1e-6)
      self.assertEqual(printed['per_class'], expected['per_class'])
      self.assertEqual(printed['dataset'], 'lvis')
      self.assertEqual(printed['num_detections'], len(self.detections))
      for group in 'rcf':
        self.assertAllClose(printed['stratified']['by_frequency'][group]['AP'],
                            expected['AP' + group], atol=1e-6)

  @pytest.mark.slow
  def test_training_counts_and_plot(self):
    train_file = os.path.join(self.root, 'train', 'annotations.json')
    plot_file = os.path.join(self.root, 'per_class.png')
    result = _run(f'--annotation_file={self.ground_truth_file}',
                  f'--detections_file={self.detections_file}',
                  '--dataset=lvis', f'--train_annotation_file={train_file}',
                  f'--plot_file={plot_file}')
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    classes = json.loads(result.stdout)['stratified']['classes']
    with open(train_file) as f:
      training = json.load(f)
    total = sum(c['train_annotations'] for c in classes)
    self.assertEqual(total, len(training['annotations']))
    self.assertGreater(os.path.getsize(plot_file), 1000)

  @pytest.mark.slow
  def test_coco_prints_pycocotools_metrics(self):
    result = _run(f'--annotation_file={self.ground_truth_file}',
                  f'--detections_file={self.detections_file}',
                  '--dataset=coco')
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    printed = json.loads(result.stdout)
    expected = coco_metrics.evaluate(coco.COCO(self.ground_truth_file),
                                     self.detections, 'bbox')
    for name in ('AP', 'AP50', 'APs', 'APr', 'APf'):
      self.assertAllClose(printed[name], expected[name], atol=1e-9)
    # COCO ignores the federated rules, so the two datasets disagree here.
    lvis_ap = json.loads(_run(f'--annotation_file={self.ground_truth_file}',
                              f'--detections_file={self.detections_file}',
                              '--dataset=lvis').stdout)['AP']
    self.assertNotAlmostEqual(printed['AP'], lvis_ap, places=3)

  def test_bad_input_is_one_line_on_stderr_and_exit_2(self):
    good = self.detections[0]
    coco_only = dict(self.ground_truth, images=[
        {k: v for k, v in image.items() if k != 'neg_category_ids'}
        for image in self.ground_truth['images']])
    cases = {
        'missing file': ('nope.json', self.detections_file, 'lvis', 'bbox',
                         'no such file'),
        'not json': (self._write('broken.json', '{"images": ['),
                     self.detections_file, 'lvis', 'bbox', 'is not JSON'),
        'ground truth not an object': (
            self._write('list.json', []), self.detections_file, 'coco',
            'bbox', 'expected a JSON object'),
        'coco ground truth as lvis': (
            self._write('coco_only.json', coco_only), self.detections_file,
            'lvis', 'bbox', 'neg_category_ids'),
        'detections not a list': (
            self.ground_truth_file, self._write('dict.json', good), 'lvis',
            'bbox', 'expected a JSON list'),
        'unknown image': (
            self.ground_truth_file,
            self._write('image.json', [dict(good, image_id=99999)]), 'lvis',
            'bbox', 'image_id=99999, which is not an image'),
        'unknown category': (
            self.ground_truth_file,
            self._write('category.json', [dict(good, category_id=1204)]),
            'coco', 'bbox', 'category_id=1204, which is not a category'),
        'score is a string': (
            self.ground_truth_file,
            self._write('score.json', [dict(good, score='0.9')]), 'lvis',
            'bbox', "score='0.9'"),
        'bool image id': (
            self.ground_truth_file,
            self._write('bool.json', [dict(good, image_id=True)]), 'lvis',
            'bbox', 'image_id=True'),
        'three-number box': (
            self.ground_truth_file,
            self._write('box.json', [dict(good, bbox=[1, 2, 3])]), 'lvis',
            'bbox', 'bbox=\\[1, 2, 3\\]'),
        'segm without mask': (
            self.ground_truth_file,
            self._write('mask.json', [{k: v for k, v in good.items()
                                       if k != 'segmentation'}]),
            'lvis', 'segm', 'needs an RLE'),
        'unknown dataset': (self.ground_truth_file, self.detections_file,
                            'objects365', 'bbox',
                            "--dataset='objects365'; accepted: coco, lvis"),
        'unknown iou type': (self.ground_truth_file, self.detections_file,
                             'lvis', 'keypoints', 'accepted: bbox, segm'),
    }
    cases_with_training = {
        'training set of other categories': (
            self._write('other.json', dict(self.ground_truth, categories=[
                {'id': 1, 'name': 'x', 'frequency': 'r'}])),
            'lacks categories \\[2, 3'),
    }
    for name, (gt, dets, dataset, iou_type, message) in cases.items():
      result = _run(f'--annotation_file={gt}', f'--detections_file={dets}',
                    f'--dataset={dataset}', f'--iou_type={iou_type}')
      self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE, name)
      self.assertEqual(result.stdout, '', name)
      lines = result.stderr.strip().splitlines()
      self.assertLen(lines, 1, f'{name}: {result.stderr}')
      self.assertRegex(lines[0], '^error: .*' + message, name)
    for name, (train_file, message) in cases_with_training.items():
      result = _run(f'--annotation_file={self.ground_truth_file}',
                    f'--detections_file={self.detections_file}',
                    '--dataset=lvis', f'--train_annotation_file={train_file}')
      self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE, name)
      self.assertRegex(result.stderr.strip(), '^error: .*' + message, name)
