"""SavedModel export of our tasks' detectors: the served model equals the
in-process one, every variable restored, class names beside it."""
import json
import os

from absl.testing import parameterized
import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse import errors
from backbone_reuse import predict
from backbone_reuse import serving
from backbone_reuse.data import category_map

_OUTPUTS = ('detection_boxes', 'detection_scores', 'detection_classes',
            'detection_masks', 'num_detections')
# The served graph sums in another order than the in-process one (its
# kernels are chosen for another batch shape), so floats differ in their last
# bits and ROIAlign carries a box's tiny shift into its mask. Measured on a
# 2-core AMX host: boxes (pixels, up to 64) by up to 2.6e-4 px / 2.8e-5
# relative; mask probabilities by up to 0.0045 (CI, 9 of 78,400 values). A
# wrong export (weights not restored, another head) moves boxes by pixels and
# masks by tenths; the test scales the in-process model's kernels by 1.05 to
# show the tolerances still see such a change.
_CLOSE = {'atol': 1e-4, 'rtol': 1e-4}
_SERVED_TOLERANCE = {
    'detection_boxes': {'atol': 1e-3, 'rtol': 1e-4},
    'detection_masks': {'atol': 2e-2, 'rtol': 0.0},
}


def evaluation_inputs(task, params, count=4):
  """{file name: (image, image_info, anchor_boxes)} of the first `count`
  validation images, as the task's evaluation input pipeline makes them."""
  with open(testing_utils.toy_data()['val_annotations']) as f:
    names = {i['id']: i['file_name'] for i in json.load(f)['images']}
  found = {}
  for images, labels in task.build_inputs(params.task.validation_data):
    for row, source_id in enumerate(
        labels['groundtruths']['source_id'].numpy()):
      found[names[int(source_id)]] = (
          images[row], labels['image_info'][row],
          {k: v[row] for k, v in labels['anchor_boxes'].items()})
    if len(found) >= count:
      return found
  return found


def read_val_image(name):
  raw = os.path.join(os.path.dirname(
      testing_utils.toy_data()['val_annotations']), 'images', name)
  with open(raw, 'rb') as f:
    return tf.io.decode_image(f.read(), channels=3)


class ExportTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('maskrcnn_freeze', 'backbone_reuse_maskrcnn_coco', 'freeze', None),
      ('cascadercnn_finetune', 'backbone_reuse_cascadercnn_coco', 'finetune',
       None),
      ('maskrcnn_adapters', 'backbone_reuse_maskrcnn_coco', 'adapters',
       {'adapters': {'reduction': 2}}),
      # A plain ViT with every strategy it takes (adapters: refused), on
      # each R-CNN head (scratch builds what finetune builds).
      ('fasterrcnn_plain_vit_partial', 'backbone_reuse_fasterrcnn_coco',
       'partial', {'model': testing_utils.PLAIN_VIT, 'frozen_stages': 1}),
      ('cascadercnn_plain_vit_freeze', 'backbone_reuse_cascadercnn_coco',
       'freeze', {'model': testing_utils.PLAIN_VIT}),
      ('maskrcnn_plain_vit_finetune', 'backbone_reuse_maskrcnn_coco',
       'finetune', {'model': testing_utils.PLAIN_VIT}),
  )
  @pytest.mark.slow
  def test_saved_model_equals_in_process_model(self, experiment, strategy,
                                               overrides):
    directory = self.get_temp_dir()
    params, task, model, model_dir = testing_utils.trained_model_dir(
        directory, experiment, strategy, overrides)
    export_dir = os.path.join(directory, f'export_{experiment}_{strategy}')
    # The config comes from the model dir's params.yaml, as the CLI does.
    resolved = serving.resolve_params(experiment, [], '', model_dir)
    self.assertEqual(resolved.task.backbone_strategy, strategy)
    info = serving.export(resolved, model_dir, export_dir)
    self.assertEqual(info['signatures'], ['serving_default'])
    self.assertGreater(info['size_mb'], 0)

    served = tf.saved_model.load(export_dir).signatures['serving_default']
    # The in-process model, fed what the serving module's preprocessing
    # makes of the same image: export and restore are all that differ.
    module = serving.DetectionModule(
        params, batch_size=None,
        input_image_size=list(params.task.model.input_size[:2]), model=model)

    @tf.function  # A graph, as served: eager kernels round differently.
    def infer(images, image_info, anchor_boxes):
      return model(images, image_shape=image_info[:, 1, :],
                   anchor_boxes=anchor_boxes, training=False)

    inputs = evaluation_inputs(task, params)
    self.assertLen(inputs, 4)
    served_classes = []  # Per detection of every image, as served.
    for name, (image, image_info, anchors) in inputs.items():
      pixels = read_val_image(name)[tf.newaxis]
      images, module_anchors, module_info = module.preprocess(pixels)
      # Serving preprocessing = the evaluation pipeline's (float rounding).
      self.assertAllClose(images[0], image, atol=1e-5)
      self.assertAllEqual(module_info[0], image_info)
      for level, boxes in anchors.items():
        self.assertAllEqual(module_anchors[level][0], boxes)
      want = infer(images, module_info, module_anchors)
      got = served(pixels)
      served_classes += [int(c) for c in got['detection_classes'][0][
          :int(got['num_detections'][0])]]
      self.assertGreater(int(got['num_detections'][0]), 0)
      for key in _OUTPUTS:
        if key in want:
          self.assertAllClose(got[key], want[key], msg=key,
                              **_SERVED_TOLERANCE.get(key, _CLOSE))
      self.assertEqual('detection_masks' in got,
                       experiment == 'backbone_reuse_maskrcnn_coco')
    # The same tolerances fail on kernels 5 % off (the last image's outputs).
    kernels = [v for v in model.variables if v.name.endswith('kernel:0')]
    self.assertNotEmpty(kernels)
    for variable in kernels:
      variable.assign(variable * 1.05)
    wrong = infer(images, module_info, module_anchors)
    for key in ('detection_boxes', 'detection_masks'):
      if key in want:
        self.assertNotAllClose(got[key], wrong[key], msg=key,
                               **_SERVED_TOLERANCE.get(key, _CLOSE))
    with open(os.path.join(export_dir, serving.LABEL_MAP_FILENAME)) as f:
      labels = json.load(f)
    self.assertEqual([(c['class_index'], c['category_id'], c['name'])
                      for c in labels['classes']],
                     [(1, 1, 'square'), (2, 2, 'triangle'), (3, 3, 'circle')])
    self.assertTrue(os.path.isfile(os.path.join(export_dir, 'params.yaml')))
    # predict reads the export as its command line does: every image, every
    # served detection, each under its class's category id.
    images_dir = os.path.join(os.path.dirname(
        testing_utils.toy_data()['val_annotations']), 'images')
    predicted = predict.predict(
        predict.load_detector(export_dir),
        [os.path.join(images_dir, name) for name in sorted(inputs)],
        os.path.join(directory, f'predict_{experiment}_{strategy}'))
    self.assertEqual(predicted['images'], len(inputs))
    category_of = {c['class_index']: c['category_id']
                   for c in labels['classes']}
    with open(os.path.join(directory, f'predict_{experiment}_{strategy}',
                           'detections.json')) as f:
      self.assertCountEqual([d['category_id'] for d in json.load(f)],
                            [category_of[c] for c in served_classes])

  @pytest.mark.slow
  def test_encoded_image_export_keeps_an_image_tensor_signature(self):
    directory = self.get_temp_dir()
    params, _, _, model_dir = testing_utils.trained_model_dir(
        directory, 'backbone_reuse_fasterrcnn_coco', 'scratch')
    export_dir = os.path.join(directory, 'export_bytes')
    info = serving.export(params, model_dir, export_dir,
                         input_type='encoded_image_string_tensor')
    self.assertEqual(info['signatures'], ['image_tensor', 'serving_default'])
    loaded = tf.saved_model.load(export_dir)
    raw = os.path.join(os.path.dirname(
        testing_utils.toy_data()['val_annotations']), 'images', '000001.png')
    with open(raw, 'rb') as f:
      data = f.read()
    from_bytes = loaded.signatures['serving_default'](tf.constant([data]))
    from_pixels = loaded.signatures['image_tensor'](
        tf.io.decode_image(data, channels=3)[tf.newaxis])
    self.assertAllClose(from_bytes['detection_boxes'],
                        from_pixels['detection_boxes'])

  @pytest.mark.slow
  def test_checkpoint_of_another_architecture_is_refused(self):
    directory = self.get_temp_dir()
    _, _, _, cascade_dir = testing_utils.trained_model_dir(
        directory, 'backbone_reuse_cascadercnn_coco', 'scratch')
    params = testing_utils.tiny_config('backbone_reuse_maskrcnn_coco')
    with self.assertRaisesRegex(errors.BadInput,
                                r'does not match the model: \d+ variable'):
      serving.build_module(params, cascade_dir)
    # A Faster R-CNN has every variable a Mask R-CNN checkpoint needs but
    # one: the checkpoint's mask head is unused, so it is refused too.
    _, _, _, mask_dir = testing_utils.trained_model_dir(
        directory, 'backbone_reuse_maskrcnn_coco', 'scratch')
    faster = testing_utils.tiny_config('backbone_reuse_fasterrcnn_coco')
    with self.assertRaisesRegex(errors.BadInput,
                                'mask_head.*in the checkpoint, not in the'):
      serving.build_module(faster, mask_dir)

  @pytest.mark.slow
  def test_cli_refuses_a_mismatched_checkpoint_in_one_line(self):
    directory = self.get_temp_dir()
    _, _, _, cascade_dir = testing_utils.trained_model_dir(
        directory, 'backbone_reuse_cascadercnn_coco', 'scratch')
    data = testing_utils.toy_data()
    override = (f"task.annotation_file={data['val_annotations']},"
                'task.backbone_strategy=scratch')
    export_dir = os.path.join(directory, 'refused')
    result = testing_utils.run_module(
        'backbone_reuse.export', '--experiment=backbone_reuse_maskrcnn_coco',
        '--config_file=configs/smoke/rcnn_tiny.yaml',
        f'--params_override={override}', f'--checkpoint={cascade_dir}',
        f'--export_dir={export_dir}')
    self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE,
                     msg=result.stderr[-2000:])
    lines = testing_utils.error_lines(result)
    self.assertLen(lines, 1)
    self.assertRegex(lines[0], r'^error: --checkpoint=.*does not match the '
                                r'model: \d+ variable\(s\) differ.*\(first: ')
    self.assertFalse(os.path.exists(os.path.join(export_dir,
                                                 'saved_model.pb')))

  def test_cli_refuses_a_batch_size_below_one_before_building(self):
    export_dir = os.path.join(self.get_temp_dir(), 'refused')
    result = testing_utils.run_module(
        'backbone_reuse.export', '--experiment=backbone_reuse_maskrcnn_coco',
        '--config_file=configs/smoke/rcnn_tiny.yaml', '--batch_size=0',
        f'--checkpoint={self.get_temp_dir()}', f'--export_dir={export_dir}')
    self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE,
                     msg=result.stderr[-2000:])
    self.assertEqual(testing_utils.error_lines(result), [
        'error: --batch_size=0; accepted: >= 1, or unset for any batch size.'])
    self.assertFalse(os.path.exists(export_dir))


class LabelMapTest(tf.test.TestCase):

  def test_ids_below_num_classes_are_the_class_indices(self):
    # COCO: ids with gaps, labels written as ids by Model Garden's converter.
    categories = [{'id': 1, 'name': 'a'}, {'id': 5, 'name': 'b'}]
    self.assertEqual(category_map.label_map(categories, 6),
                     [{'class_index': 1, 'category_id': 1, 'name': 'a'},
                      {'class_index': 5, 'category_id': 5, 'name': 'b'}])

  def test_records_of_class_indices_are_compacted(self):
    # LVIS records: our converter wrote the compacted indices.
    categories = [{'id': 7, 'name': 'b'}, {'id': 3, 'name': 'a'}]
    self.assertEqual(category_map.label_map(categories, 3,
                                            records_carry_indices=True),
                     [{'class_index': 1, 'category_id': 3, 'name': 'a'},
                      {'class_index': 2, 'category_id': 7, 'name': 'b'}])

  def test_categories_that_cannot_be_the_classes_are_refused(self):
    with self.assertRaisesRegex(ValueError, 'num_classes=3'):
      category_map.label_map([{'id': i, 'name': str(i)}
                              for i in (1, 5, 9)], 3)
    # COCO-style records keep the ids: 2 categories + background do not
    # make the ids 3 and 7 class indices (the head would learn id k as k).
    with self.assertRaisesRegex(ValueError, 'num_classes=0 to map'):
      category_map.label_map([{'id': 7, 'name': 'b'}, {'id': 3, 'name': 'a'}],
                             3)


if __name__ == '__main__':
  tf.test.main()
