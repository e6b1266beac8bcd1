"""Copy-Paste: properties on generated scenes, tf.data + Model Garden parser."""
import numpy as np
from official.vision.dataloaders import maskrcnn_input
from official.vision.dataloaders import tf_example_decoder
import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse.dataloaders import copy_paste

_SIZE = 64


def _scene(rng, num_objects, colour):
  """A jittered-like example: rectangles of random size at random places."""
  masks = np.zeros((num_objects, _SIZE, _SIZE), np.float32)
  for mask in masks:
    y, x = rng.integers(0, _SIZE - 12, 2)
    h, w = rng.integers(6, 30, 2)
    mask[y:y + h, x:x + w] = 1
  image = np.full((_SIZE, _SIZE, 3), colour, np.float32)
  image += rng.integers(0, 20, image.shape)
  return {'image': tf.constant(image), 'masks': tf.constant(masks),
          'classes': tf.constant(rng.integers(1, 5, num_objects), tf.int64),
          'is_crowd': tf.zeros([num_objects], tf.bool)}


def _mask_box(mask):
  rows, cols = np.where(mask > 0.5)
  return [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]


class PasteTest(tf.test.TestCase):

  def _pasted(self, seed=(1, 2), max_num_instances=100, blend_sigma=0.0,
              target_objects=4, source_objects=5):
    rng = np.random.default_rng(seed[0] * 100 + seed[1])
    target = _scene(rng, target_objects, 40)
    source = _scene(rng, source_objects, 200)
    options = copy_paste.CopyPasteOptions(
        output_size=(_SIZE, _SIZE), max_num_instances=max_num_instances,
        blend_sigma=blend_sigma)
    out = copy_paste.paste(target, source, options,
                           tf.constant(seed, tf.int32))
    return target, source, {k: v.numpy() for k, v in out.items()}

  def test_pasted_pixels_are_the_sources_and_cut_the_target(self):
    for seed in range(8):
      target, source, out = self._pasted(seed=(seed, 7))
      hard = out['paste_mask'] > 0.5
      self.assertTrue(hard.any())  # A non-empty subset is pasted.
      self.assertAllEqual(out['image'][hard], source['image'].numpy()[hard])
      self.assertAllEqual(out['image'][~hard], target['image'].numpy()[~hard])
      for mask, pasted in zip(out['masks'], out['pasted']):
        if not pasted:
          self.assertEqual(float((mask * hard).sum()), 0.0)

  def test_boxes_are_the_masks_bounding_boxes_and_never_empty(self):
    for seed in range(8):
      _, _, out = self._pasted(seed=(seed, 3), target_objects=6)
      self.assertEqual(len(out['masks']), len(out['boxes']))
      self.assertFalse(np.isnan(out['boxes']).any())
      for mask, box in zip(out['masks'], out['boxes']):
        self.assertGreater(mask.sum(), 0)
        self.assertAllClose(box, _mask_box(mask), atol=1)
        self.assertGreater((box[2] - box[0]) * (box[3] - box[1]), 0)

  def test_hidden_objects_are_dropped(self):
    target = _scene(np.random.default_rng(0), 1, 40)
    masks = np.zeros((1, _SIZE, _SIZE), np.float32)
    masks[0, 10:20, 10:20] = 1
    target['masks'] = tf.constant(masks)
    source = _scene(np.random.default_rng(1), 1, 200)
    cover = np.zeros((1, _SIZE, _SIZE), np.float32)
    cover[0, 5:25, 5:25] = 1
    source['masks'] = tf.constant(cover)
    options = copy_paste.CopyPasteOptions(output_size=(_SIZE, _SIZE))
    out = copy_paste.paste(target, source, options, tf.constant([0, 0]))
    self.assertAllEqual(out['pasted'], [True])  # Only the pasted object.
    # Partly covered: kept, with the box of what remains visible.
    cover[0, 5:25, 5:15] = 0
    source['masks'] = tf.constant(cover)
    out = copy_paste.paste(target, source, options, tf.constant([0, 0]))
    self.assertAllEqual(out['pasted'], [False, True])
    self.assertAllEqual(out['boxes'][0], [10, 10, 20, 15])

  def test_pasted_objects_are_truncated_first(self):
    _, _, limited = self._pasted(max_num_instances=5, target_objects=4,
                                 source_objects=8)
    _, _, unlimited = self._pasted(max_num_instances=100, target_objects=4,
                                   source_objects=8)
    self.assertGreater(len(unlimited['classes']), 5)  # The limit bites.
    self.assertLen(limited['classes'], 5)
    pasted = list(limited['pasted'])
    self.assertEqual(pasted, sorted(pasted))  # Targets first, then pasted.
    self.assertEqual(pasted.count(False),
                     min(5, list(unlimited['pasted']).count(False)))
    self.assertAllEqual(limited['masks'], unlimited['masks'][:5])

  def test_same_seed_same_result_other_seed_other_subset(self):
    _, _, first = self._pasted(seed=(5, 5))
    _, _, again = self._pasted(seed=(5, 5))
    for key in first:
      self.assertAllEqual(first[key], again[key])
    rng_seed = (5, 5)
    masks = set()
    for other in range(6):
      rng = np.random.default_rng(rng_seed[0] * 100 + rng_seed[1])
      target, source = _scene(rng, 4, 40), _scene(rng, 5, 200)
      out = copy_paste.paste(
          target, source,
          copy_paste.CopyPasteOptions(output_size=(_SIZE, _SIZE)),
          tf.constant([other, 1]))
      masks.add(out['paste_mask'].numpy().tobytes())
    self.assertGreater(len(masks), 1)

  def test_blended_alpha_is_soft_at_edges_only(self):
    target, source, out = self._pasted(blend_sigma=2.0)
    hard = out['paste_mask'] > 0.5
    image, t, s = out['image'], target['image'].numpy(), source['image'].numpy()
    between = np.logical_and(np.abs(image - t).max(-1) > 1e-3,
                             np.abs(image - s).max(-1) > 1e-3)
    self.assertTrue(between.any())  # Mixed pixels exist, around the edges.
    far = np.ones_like(hard)
    for dy in range(-7, 8):
      for dx in range(-7, 8):
        far &= np.roll(np.roll(~hard, dy, 0), dx, 1)
    self.assertFalse(between[far].any())


class CopyPastePipelineTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_runs_in_tf_data_and_feeds_model_gardens_parser(self):
    pattern = testing_utils.shapes_lvis_data()['train']
    decoder = tf_example_decoder.TfExampleDecoder(include_mask=True)
    options = copy_paste.CopyPasteOptions(output_size=(64, 64),
                                          max_num_instances=6, seed=3)
    decoded = tf.data.Dataset.list_files(pattern, shuffle=False).interleave(
        tf.data.TFRecordDataset).map(decoder.decode).repeat()
    pasted = decoded.apply(copy_paste.sample_fn(options, 16))
    parser = maskrcnn_input.Parser(
        output_size=[64, 64], min_level=3, max_level=5, num_scales=1,
        aspect_ratios=[1.0], anchor_size=3, max_num_instances=6,
        include_mask=True, mask_crop_size=28)
    batches = pasted.map(parser.parse_fn(True)).batch(2).take(4)
    pasted_count = 0
    for example in pasted.take(8):
      boxes = example['groundtruth_boxes'].numpy()
      self.assertTrue(np.isfinite(boxes).all())
      self.assertTrue(((boxes[:, 2] - boxes[:, 0]) > 0).all())
      self.assertLessEqual(len(boxes), 6)
      self.assertEqual(example['image'].shape, (64, 64, 3))
      pasted_count += len(boxes)
    self.assertGreater(pasted_count, 8)
    for images, labels in batches:
      self.assertEqual(images.shape, (2, 64, 64, 3))
      self.assertTrue(np.isfinite(images.numpy()).all())
      classes = labels['gt_classes'].numpy()
      self.assertTrue((classes[classes > 0] <= 40).all())

  def test_same_seed_same_stream(self):
    images = []
    for _ in range(2):
      tf.random.set_seed(0)
      data = {
          'source_id': tf.constant('1'),
          'image': tf.cast(tf.random.uniform([40, 50, 3], 0, 255), tf.uint8),
          'groundtruth_instance_masks': tf.cast(
              tf.random.uniform([3, 40, 50]) > 0.5, tf.float32),
          'groundtruth_classes': tf.constant([1, 2, 3], tf.int64),
          'groundtruth_is_crowd': tf.zeros([3], tf.bool),
      }
      stream = tf.data.Dataset.from_tensors(data).repeat(6)
      options = copy_paste.CopyPasteOptions(output_size=(32, 32), seed=7)
      images.append([e['image'].numpy() for e in
                     stream.apply(copy_paste.sample_fn(options, 4))])
    for first, second in zip(*images):
      self.assertAllEqual(first, second)


class CopyPasteTaskTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_a_task_trains_on_copy_paste_input(self):
    params = testing_utils.tiny_config(
        'backbone_reuse_maskrcnn_coco',
        task_overrides={'train_data': {'parser': {'copy_paste': {
            'enabled': True, 'blend_sigma': 1.0}}}})
    task = testing_utils.build_task(params)
    images, labels = next(iter(task.build_inputs(params.task.train_data)))
    self.assertEqual(images.shape, (2, 64, 64, 3))
    self.assertGreater(int(tf.reduce_sum(tf.cast(labels['gt_classes'] > 0,
                                                 tf.int32))), 0)
    model = task.build_model()
    _, metrics, _ = testing_utils.train_steps(task, model, params, 2)
    losses = {m.name: float(m.result()) for m in metrics}
    self.assertTrue(np.isfinite(list(losses.values())).all(), losses)
    self.assertGreater(losses['mask_loss'], 0.0)

  def test_refused_without_masks(self):
    with self.assertRaisesRegex(ValueError, 'needs task.model.include_mask'):
      testing_utils.tiny_config(
          'backbone_reuse_fasterrcnn_coco',
          task_overrides={'train_data': {'parser': {'copy_paste': {
              'enabled': True}}}})
