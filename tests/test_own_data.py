"""A user's own COCO-format dataset trains with no hand-computed class count;
a count that cannot hold its categories is refused before any model."""
import json
import os

import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse import preflight
from backbone_reuse.configs import resolve
from backbone_reuse.data import coco_conversion


class OwnDataTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    directory = os.path.join(tf.compat.v1.test.get_temp_dir(), 'own_data')
    cls.annotation_file, image_dir = testing_utils.own_coco_dataset(
        directory, num_images=6)
    cls.pattern = coco_conversion.convert(
        cls.annotation_file, image_dir, os.path.join(directory, 'train'),
        include_masks=False)

  def _params(self, num_classes, annotation_file=None):
    return resolve.experiment_config(
        'backbone_reuse_fasterrcnn_coco', ['configs/smoke/rcnn_tiny.yaml'],
        {'task': {'model': {'num_classes': num_classes},
                  'annotation_file': (self.annotation_file
                                      if annotation_file is None
                                      else annotation_file),
                  'train_data': {'input_path': self.pattern},
                  'validation_data': {'input_path': self.pattern}}},
        root=str(testing_utils.REPO))

  def test_zero_reads_the_class_count_and_maps_the_ids(self):
    params = self._params(0)
    # 4 categories + background, not the largest id (5000) + 1.
    self.assertEqual(params.task.model.num_classes, 5)
    self.assertEqual(list(params.task.class_category_ids),
                     [1001, 2500, 3999, 5000])
    found = preflight.check(params, os.path.join(self.get_temp_dir(), 'run'))
    self.assertEqual(found['problems'], [])

  def test_zero_without_annotations_is_refused(self):
    with self.assertRaisesRegex(
        ValueError, r"task.model.num_classes=0 means: read the class count "
        r"from task.annotation_file, which is ''"):
      self._params(0, annotation_file='')
    with self.assertRaisesRegex(
        ValueError, r"task.annotation_file='/no/such.json', which failed"):
      self._params(0, annotation_file='/no/such.json')

  def test_a_hand_set_count_is_checked_against_the_ids(self):
    # 5 (4 categories + background) without the map: the records keep the
    # raw ids, which a 5-class head cannot hold.
    (problem,) = preflight.check_num_classes(self._params(5).task)
    self.assertRegex(problem, r'^task.model.num_classes=5 cannot hold the 4 '
                              r'categories .*\(ids 1001..5000, .*set it to 0 '
                              r'to map the ids to class indices 1..4, or to '
                              r'5001 to keep the ids as labels\.$')
    # Model Garden's convention, the ids as labels, is still accepted.
    self.assertEqual(preflight.check_num_classes(self._params(5001).task), [])


class OwnDataEndToEndTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_convert_train_frozen_export_predict_keep_ids_and_names(self):
    # The README's "Train on your own data" commands, as a user runs them,
    # on ids 1001, 2500, 3999 (and 5000, never annotated) and images of
    # three sizes: ids map to class indices 1..4 and back.
    directory = self.get_temp_dir()
    annotation_file, image_dir = testing_utils.own_coco_dataset(
        directory, num_images=6, sizes=((48, 64), (64, 40), (56, 56)))
    names = {c['id']: c['name'] for c in testing_utils.OWN_CATEGORIES}

    def run(module, *flags):
      result = testing_utils.run_module(module, *flags)
      self.assertEqual(result.returncode, 0,
                       msg=f'{module}: {result.stderr[-3000:]}')
      return result

    prefix = os.path.join(directory, 'records', 'train')
    run('backbone_reuse.data.coco_tfrecord',
        f'--annotation_file={annotation_file}', f'--image_dir={image_dir}',
        f'--output_prefix={prefix}', '--num_shards=2')
    probe = resolve.experiment_config(
        'backbone_reuse_fasterrcnn_coco', ['configs/smoke/rcnn_tiny.yaml'],
        root=str(testing_utils.REPO))
    checkpoint, _ = testing_utils.write_classification_checkpoint(
        probe.task.model, os.path.join(directory, 'classifier'), 'trainer')
    model_dir = os.path.join(directory, 'run')
    run('backbone_reuse.train', '--experiment=backbone_reuse_fasterrcnn_coco',
        '--config_file=configs/smoke/rcnn_tiny.yaml',
        '--config_file=configs/strategies/freeze.yaml',
        '--params_override=' + ','.join([
            'task.model.num_classes=0',  # Read from the annotation file.
            f'task.annotation_file={annotation_file}',
            f'task.train_data.input_path={prefix}-*',
            f'task.validation_data.input_path={prefix}-*',
            f'task.init_checkpoint={checkpoint}',
            # A few steps leave 5-way scores near 1/5: keep them all.
            'task.model.detection_generator.pre_nms_score_threshold=0.0']),
        '--mode=train_and_eval', f'--model_dir={model_dir}')
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      self.assertIn('AP', json.load(f)['metrics'])
    export_dir = os.path.join(directory, 'export')
    run('backbone_reuse.export', '--experiment=backbone_reuse_fasterrcnn_coco',
        f'--checkpoint={model_dir}', f'--export_dir={export_dir}')
    with open(os.path.join(export_dir, 'label_map.json')) as f:
      label_map = json.load(f)
    # K categories + background; class index i is the i-th id.
    self.assertEqual(label_map['num_classes'], 5)
    self.assertEqual([(c['class_index'], c['category_id'], c['name'])
                      for c in label_map['classes']],
                     [(i + 1, c['id'], c['name']) for i, c in
                      enumerate(testing_utils.OWN_CATEGORIES)])
    output_dir = os.path.join(directory, 'predicted')
    run('backbone_reuse.predict', f'--model={export_dir}',
        f'--images={image_dir}', f'--output_dir={output_dir}',
        '--score_threshold=0.0', f'--annotation_file={annotation_file}')
    with open(os.path.join(output_dir, 'detections.json')) as f:
      detections = json.load(f)
    self.assertNotEmpty(detections)
    self.assertContainsSubset({d['category_id'] for d in detections},
                              set(names))
    with open(os.path.join(output_dir, 'images.json')) as f:
      images = json.load(f)
    # Image ids are the dataset's own (100..105), matched by file name.
    self.assertEqual(sorted(i['id'] for i in images), list(range(100, 106)))
    scored = run('backbone_reuse.tools.evaluate',
                 f'--annotation_file={annotation_file}',
                 f'--detections_file={output_dir}/detections.json')
    per_class = json.loads(scored.stdout)['per_class']
    self.assertEqual(set(per_class), set(names.values()))
    # A category without annotations is undefined (-1), as in pycocotools.
    self.assertEqual(per_class['urn'], -1.0)


if __name__ == '__main__':
  tf.test.main()
