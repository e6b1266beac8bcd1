"""A dataset whose category ids are not 1..K trains on class indices 1..K:
the map is fixed when the config is resolved, applied where labels are
decoded and undone where predictions are scored or exported (issue 38)."""
import json
import os

from official.vision.evaluation import coco_evaluator
import numpy as np
import tensorflow as tf

import testing_utils
from backbone_reuse import preflight
from backbone_reuse import serving
from backbone_reuse.configs import resolve
from backbone_reuse.data import category_map
from backbone_reuse.data import coco_conversion
from backbone_reuse.dataloaders import decoders
from backbone_reuse.evaluation import category_ids

_IDS = [c['id'] for c in testing_utils.OWN_CATEGORIES]  # 1001 .. 5000


def _write_categories(directory, ids):
  path = os.path.join(directory, f'categories_{"_".join(map(str, ids))}.json')
  with open(path, 'w') as f:
    json.dump({'images': [], 'annotations': [],
               'categories': [{'id': i, 'name': f'n{i}'} for i in ids]}, f)
  return path


class ClassCategoryIdsTest(tf.test.TestCase):

  def test_ids_one_to_k_need_no_map(self):
    self.assertEqual(category_map.class_category_ids(
        [{'id': i} for i in (2, 3, 1)]), [])

  def test_other_ids_are_mapped_in_ascending_order(self):
    self.assertEqual(category_map.class_category_ids(
        [{'id': i} for i in (3999, 1001, 5000, 2500)]), sorted(_IDS))
    # 0-based ids (id 0 would collide with background) map like any other.
    self.assertEqual(category_map.class_category_ids(
        [{'id': i} for i in (0, 1, 2)]), [0, 1, 2])
    with self.assertRaisesRegex(ValueError, 'category ids repeat'):
      category_map.class_category_ids([{'id': 4}, {'id': 4}])


class ResolveTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.directory = os.path.join(tf.compat.v1.test.get_temp_dir(),
                                 'class_indices')
    cls.annotation_file, cls.image_dir = testing_utils.own_coco_dataset(
        cls.directory, num_images=6)
    cls.pattern = coco_conversion.convert(
        cls.annotation_file, cls.image_dir,
        os.path.join(cls.directory, 'train'), include_masks=False)

  def _params(self, annotation_file, num_classes=0, experiment='fasterrcnn',
              **task):
    return resolve.experiment_config(
        f'backbone_reuse_{experiment}_coco', ['configs/smoke/rcnn_tiny.yaml']
        if experiment != 'retinanet' else [],
        {'task': dict({'model': {'num_classes': num_classes},
                       'annotation_file': annotation_file,
                       'train_data': {'input_path': self.pattern},
                       'validation_data': {'input_path': self.pattern}},
                      **task)},
        root=str(testing_utils.REPO))

  def test_zero_maps_ids_in_the_thousands_to_k_plus_one_classes(self):
    for experiment in ('fasterrcnn', 'retinanet'):
      task = self._params(self.annotation_file, experiment=experiment).task
      self.assertEqual(task.model.num_classes, 5)  # 4 categories + bg.
      self.assertEqual(list(task.class_category_ids), _IDS)
    self.assertEqual(preflight.check_num_classes(task), [])

  def test_zero_on_ids_one_to_k_keeps_them(self):
    task = self._params(_write_categories(self.directory, [1, 2, 3])).task
    self.assertEqual((task.model.num_classes, list(task.class_category_ids)),
                     (4, []))

  def test_zero_based_ids_are_mapped_and_a_short_count_told_only_zero(self):
    zero_based = _write_categories(self.directory, [0, 1, 2])
    task = self._params(zero_based).task
    self.assertEqual((task.model.num_classes, list(task.class_category_ids)),
                     (4, [0, 1, 2]))
    (problem,) = preflight.check_num_classes(
        self._params(zero_based, num_classes=3).task)
    self.assertEqual(
        problem, f'task.model.num_classes=3 cannot hold the 3 categories of '
        f'task.annotation_file={zero_based!r} (ids 0..2, kept as labels by '
        "Model Garden's converter): set it to 0 to map the ids to class "
        'indices 1..3.')

  def test_a_hand_set_count_of_k_plus_one_on_other_ids_is_refused(self):
    # Records keep ids 0..2: id 0 would train as background and class k
    # would be read as id k - 1.
    zero_based = _write_categories(self.directory, [0, 1, 2])
    (problem,) = preflight.check_num_classes(
        self._params(zero_based, num_classes=4).task)
    self.assertRegex(problem, r'^task.model.num_classes=4 cannot hold the 3 '
                              r'categories .*set it to 0 to map the ids')

  def test_a_hand_set_count_is_told_both_ways(self):
    (problem,) = preflight.check_num_classes(
        self._params(self.annotation_file, num_classes=20).task)
    self.assertRegex(problem, r'^task.model.num_classes=20 cannot hold the 4 '
                              r'categories .*\(ids 1001..5000, .*set it to 0 '
                              r'to map the ids to class indices 1..4, or to '
                              r'5001 to keep the ids as labels\.$')

  def test_records_of_another_dataset_are_named(self):
    other = _write_categories(self.directory, [1001, 2500, 4000, 5000])
    (problem,) = preflight.check_num_classes(self._params(other).task)
    self.assertRegex(problem, r'^class label 3999 of the training records '
                              r'\(.*train-00000-of-00001\.tfrecord\) is no '
                              r'category id of task.class_category_ids')

  def test_a_map_that_cannot_be_the_head_is_refused(self):
    with self.assertRaisesRegex(ValueError, r'ascending ids, none repeated'):
      self._params(self.annotation_file, class_category_ids=[2500, 1001])
    with self.assertRaisesRegex(
        ValueError, r'num_classes=9 does not match the 2 ids of '
        r'task.class_category_ids \+ background; accepted: 3, or 0'):
      self._params(self.annotation_file, num_classes=9,
                   class_category_ids=[1001, 2500])

  def test_decoded_records_carry_class_indices(self):
    task = self._params(self.annotation_file).task
    decoder = decoders.build(task.model, task.train_data,
                             task.class_category_ids)
    with open(self.annotation_file) as f:
      truth = {a['image_id']: a['category_id']
               for a in json.load(f)['annotations']}
    seen = {}
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(self.pattern)):
      example = decoder.decode(record)
      seen[int(example['source_id'])] = [
          int(c) for c in example['groundtruth_classes']]
    self.assertEqual(seen, {image: [_IDS.index(category) + 1]
                            for image, category in truth.items()})

  def test_the_tasks_inputs_carry_class_indices_and_score_in_ids(self):
    for experiment in ('fasterrcnn', 'retinanet'):
      params = self._params(self.annotation_file, experiment=experiment)
      params.task.validation_data.global_batch_size = 2  # 6 images.
      task = testing_utils.build_task(params)
      classes = set()
      for _, labels in task.build_inputs(params.task.validation_data):
        truth = labels['groundtruths']
        counts = np.reshape(truth['num_detections'].numpy(), [-1])
        for row, count in enumerate(counts):
          classes.update(truth['classes'][row, :int(count)].numpy().tolist())
      self.assertEqual(classes, {1, 2, 3}, experiment)  # 5000: no object.
      task.build_metrics(training=False)
      self.assertIsInstance(task.coco_metric,
                            category_ids.CategoryIdEvaluator, experiment)

  def test_export_label_map_names_each_index_by_its_id(self):
    params = self._params(self.annotation_file)
    labels = serving.class_labels(params)
    self.assertEqual(
        [(c['class_index'], c['category_id'], c['name'])
         for c in labels['classes']],
        [(1, 1001, 'kettle'), (2, 2500, 'mug'), (3, 3999, 'teapot'),
         (4, 5000, 'urn')])


class DecodeTest(tf.test.TestCase):

  def _decode(self, labels):
    decode = decoders.class_indices(
        lambda _: {'groundtruth_classes': tf.constant(labels, tf.int64),
                   'source_id': tf.constant('17')}, [0, 7, 23, 61])
    return decode(None)['groundtruth_classes'].numpy().tolist()

  def test_each_id_becomes_its_index(self):
    self.assertEqual(self._decode([61, 0, 23, 7, 7]), [4, 1, 3, 2, 2])
    self.assertEqual(self._decode([]), [])

  def test_a_label_outside_the_map_fails_naming_it(self):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"(?s)class label\(s\)'\s+24\s.*source_id"
                                r"'\s+b'17'.*task.class_category_ids"):
      self._decode([23, 24])
    with self.assertRaises(tf.errors.InvalidArgumentError):
      self._decode([62])  # Beyond the last id.


class ScoredInCategoryIdsTest(tf.test.TestCase):

  def test_indices_become_ids_and_the_rest_stays(self):
    mapped = category_ids.to_category_ids(
        tf.constant([[0, 1, 4, -1, 2]], tf.int32), _IDS)
    self.assertAllEqual(mapped, [[0, 1001, 5000, -1, 2500]])
    self.assertEqual(mapped.dtype, tf.int32)

  def test_model_gardens_evaluator_scores_mapped_predictions(self):
    directory = self.get_temp_dir()
    annotation_file, _ = testing_utils.own_coco_dataset(directory,
                                                        num_images=3)
    with open(annotation_file) as f:
      dataset = json.load(f)

    def evaluate(wrap):
      evaluator = coco_evaluator.COCOEvaluator(
          annotation_file=annotation_file, include_mask=False,
          need_rescale_bboxes=False, per_category_metrics=True)
      if wrap:
        evaluator = category_ids.CategoryIdEvaluator(evaluator, _IDS)
      boxes, classes = [], []
      for annotation in dataset['annotations']:
        x, y, w, h = annotation['bbox']
        boxes.append([[y, x, y + h, x + w]])
        classes.append([_IDS.index(annotation['category_id']) + 1])
      count = len(boxes)
      evaluator.update_state(None, {
          'source_id': tf.constant([a['image_id']
                                    for a in dataset['annotations']]),
          'num_detections': tf.ones([count], tf.int32),
          'detection_boxes': tf.constant(boxes, tf.float32),
          'detection_classes': tf.constant(classes, tf.int32),
          'detection_scores': tf.ones([count, 1])})
      return evaluator.result()

    # Every prediction is a ground-truth box with its class index: scored
    # in category ids it is perfect; unmapped, its indices match nothing.
    self.assertAllClose(evaluate(wrap=True)['AP'], 1.0)
    self.assertLess(evaluate(wrap=False)['AP'], 0.0 + 1e-6)


if __name__ == '__main__':
  tf.test.main()
