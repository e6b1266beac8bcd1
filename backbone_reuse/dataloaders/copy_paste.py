"""Copy-Paste augmentation (Ghiasi et al. 2021), in TensorFlow ops only.

Works on the decoded examples of Model Garden's TfExampleDecoder, inside
`tf.data` (graph mode, TPU-safe: no Python-side randomness or numpy):

  1. target and source (an example of a second shuffled stream of the same
     data) each go through large-scale jitter on their own: random
     horizontal flip, resize by a random scale in [aug_scale_min,
     aug_scale_max], random crop / pad to the output size (Model Garden's
     preprocess_ops; padding is the mean pixel, which normalisation maps to
     0 as Model Garden pads), all drawn from a per-pair stateless seed;
  2. a random non-empty subset of the source's objects is pasted: with a
     hard mask, or with the mask blurred by a Gaussian (`blend_sigma` > 0
     pixels, the paper's original variant) as alpha;
  3. target masks are cut where pasted pixels land, each box is recomputed
     as its mask's bounding box, and objects left with fewer than
     `min_visible_pixels` pixels or less than `min_visible_fraction` of
     their area before pasting are dropped (as are objects the jitter
     cropped away);
  4. pasted objects come after the target's and are truncated first at
     `max_num_instances`.
The result is a decoded example at the output size; Model Garden's parser
then runs with its own jitter switched off (`task_parser_options`).
Every kept object has a non-empty mask and a box of positive area.
"""
import dataclasses
from typing import Callable, Dict, Tuple

from official.vision.ops import preprocess_ops
import tensorflow as tf

# A Python sequence, not a tensor: a tensor made at import starts TensorFlow's
# runtime, after which a multi-worker strategy can no longer be created.
_MEAN_RGB = tuple(float(v) for v in preprocess_ops.MEAN_RGB)


@dataclasses.dataclass(frozen=True)
class CopyPasteOptions:
  """What the augmentation does (see the module docstring)."""
  output_size: Tuple[int, int]
  aug_scale_min: float = 0.1
  aug_scale_max: float = 2.0
  aug_rand_hflip: bool = True
  blend_sigma: float = 0.0
  min_visible_pixels: int = 4
  min_visible_fraction: float = 0.05
  max_num_instances: int = 100
  seed: int = 0


def jitter(data: Dict[str, tf.Tensor], options: CopyPasteOptions,
           seed: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Flip + scale jitter + crop/pad of an image and its instance masks.

  Model Garden's resize_and_crop_image draws its scale and crop with
  stateful random ops, which parallel tf.data maps make order-dependent;
  here they are drawn statelessly from `seed`, then the image and masks are
  cropped with Model Garden's resize_and_crop_masks geometry.

  Args:
    data: decoded example ('image' [H, W, 3], 'groundtruth_instance_masks'
      [N, H, W], 'groundtruth_classes' [N], 'groundtruth_is_crowd' [N]).
    options: output size and jitter range.
    seed: int32 [2], the stateless seed of the flip, scale and crop.

  Returns:
    {'image': float32 [h, w, 3] in 0-255, 'masks': float32 [N, h, w] in
     {0, 1}, 'classes': int64 [N], 'is_crowd': bool [N]} at the output size.
  """
  flip_seed, scale_seed, crop_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 3))
  image = tf.cast(data['image'], tf.float32)
  masks = tf.cast(data['groundtruth_instance_masks'], tf.float32)
  if options.aug_rand_hflip:
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    masks = tf.cond(flip, lambda: masks[:, :, ::-1], lambda: masks)
  output_size = tf.constant(options.output_size, tf.float32)
  size = tf.cast(tf.shape(image)[:2], tf.float32)
  # As Model Garden: fit the output box, times a random scale, random crop.
  scale = tf.reduce_min(output_size / size) * tf.random.stateless_uniform(
      [], scale_seed, options.aug_scale_min, options.aug_scale_max)
  scaled_size = tf.round(size * scale)
  image_scale = scaled_size / size
  max_offset = tf.maximum(scaled_size - output_size, 0.0)
  offset = tf.floor(max_offset * tf.random.stateless_uniform([2], crop_seed))
  # Image and masks together: the same nearest/bilinear geometry as Model
  # Garden's mask op, with the mean pixel as padding.
  resized = tf.image.resize(image[None] - _MEAN_RGB,
                            tf.cast(scaled_size, tf.int32))[0]
  start = tf.cast(offset, tf.int32)
  height, width = options.output_size
  resized = resized[start[0]:start[0] + height, start[1]:start[1] + width]
  image = tf.image.pad_to_bounding_box(resized, 0, 0, height, width)
  masks = preprocess_ops.resize_and_crop_masks(
      masks[..., None], image_scale, [height, width], offset)[..., 0]
  return {
      'image': image + _MEAN_RGB,
      'masks': tf.cast(masks > 0.5, tf.float32),
      'classes': tf.cast(data['groundtruth_classes'], tf.int64),
      'is_crowd': tf.cast(data['groundtruth_is_crowd'], tf.bool),
  }


def boxes_from_masks(masks: tf.Tensor) -> tf.Tensor:
  """[N, H, W] masks -> [N, 4] pixel boxes (ymin, xmin, ymax, xmax).

  The box covers every mask pixel: max coordinates are the last pixel + 1.
  An empty mask gives a meaningless box; callers drop empty masks.
  """
  occupied = masks > 0.5
  rows = tf.cast(tf.reduce_any(occupied, axis=2), tf.int32)  # [N, H]
  cols = tf.cast(tf.reduce_any(occupied, axis=1), tf.int32)  # [N, W]
  height, width = tf.shape(masks)[1], tf.shape(masks)[2]
  ymin = tf.argmax(rows, axis=1, output_type=tf.int32)
  ymax = height - tf.argmax(rows[:, ::-1], axis=1, output_type=tf.int32)
  xmin = tf.argmax(cols, axis=1, output_type=tf.int32)
  xmax = width - tf.argmax(cols[:, ::-1], axis=1, output_type=tf.int32)
  return tf.cast(tf.stack([ymin, xmin, ymax, xmax], axis=1), tf.float32)


def _gaussian_blur(mask: tf.Tensor, sigma: float) -> tf.Tensor:
  radius = max(1, int(3 * sigma + 0.5))
  offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
  kernel = tf.exp(-offsets ** 2 / (2.0 * sigma ** 2))
  kernel /= tf.reduce_sum(kernel)
  image = mask[None, :, :, None]
  image = tf.nn.conv2d(image, tf.reshape(kernel, [-1, 1, 1, 1]), 1, 'SAME')
  image = tf.nn.conv2d(image, tf.reshape(kernel, [1, -1, 1, 1]), 1, 'SAME')
  return tf.clip_by_value(image[0, :, :, 0], 0.0, 1.0)


def paste(target: Dict[str, tf.Tensor], source: Dict[str, tf.Tensor],
          options: CopyPasteOptions, seed: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Pastes a random non-empty subset of `source`'s objects onto `target`.

  Args:
    target: `jitter` output.
    source: `jitter` output, same output size.
    options: blending, visibility thresholds, instance limit.
    seed: int32 [2], the stateless seed of the subset choice.

  Returns:
    `jitter`-like dict plus 'boxes' [M, 4] (pixels), 'pasted' bool [M] and
    'paste_mask' [h, w] (1 where source pixels were pasted); 'image' stays
    float32 0-255.
  """
  num_source = tf.shape(source['classes'])[0]
  count_seed, order_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  count = tf.random.stateless_uniform([], count_seed, minval=1,
                                      maxval=tf.maximum(num_source, 1) + 1,
                                      dtype=tf.int32)
  count = tf.minimum(count, num_source)
  scores = tf.random.stateless_uniform([num_source], order_seed)
  chosen = tf.argsort(scores)[:count]
  pasted_masks = tf.gather(source['masks'], chosen)
  pasted_area = tf.reduce_sum(pasted_masks, axis=[1, 2])
  hard = tf.cast(tf.reduce_max(tf.concat(
      [pasted_masks, tf.zeros_like(target['image'][None, :, :, 0])], 0),
                               axis=0) > 0.5, tf.float32)
  alpha = _gaussian_blur(hard, options.blend_sigma) if (
      options.blend_sigma > 0) else hard
  image = (target['image'] * (1.0 - alpha[..., None]) +
           source['image'] * alpha[..., None])
  # Pasted objects may overlap each other: later ones cover earlier ones.
  covered_later = tf.math.cumsum(pasted_masks, axis=0, exclusive=True,
                                 reverse=True) > 0.5
  pasted_masks *= 1.0 - tf.cast(covered_later, tf.float32)
  target_area = tf.reduce_sum(target['masks'], axis=[1, 2])
  target_masks = target['masks'] * (1.0 - hard)
  masks = tf.concat([target_masks, pasted_masks], axis=0)
  before = tf.concat([target_area, pasted_area], axis=0)
  visible = tf.reduce_sum(masks, axis=[1, 2])
  keep = tf.logical_and(
      visible >= float(options.min_visible_pixels),
      visible >= options.min_visible_fraction * before)
  keep = tf.where(keep)[:, 0][:options.max_num_instances]
  num_target = tf.shape(target['classes'])[0]
  masks = tf.gather(masks, keep)
  return {
      'image': image,
      'masks': masks,
      'boxes': boxes_from_masks(masks),
      'classes': tf.gather(tf.concat(
          [target['classes'], tf.gather(source['classes'], chosen)], 0),
                           keep),
      'is_crowd': tf.gather(tf.concat(
          [target['is_crowd'], tf.gather(source['is_crowd'], chosen)], 0),
                            keep),
      'pasted': tf.gather(tf.range(num_target + count) >= num_target, keep),
      'paste_mask': hard,
  }


def as_decoded(pasted: Dict[str, tf.Tensor],
               source_id: tf.Tensor) -> Dict[str, tf.Tensor]:
  """`paste` output -> a decoded example for Model Garden's parser."""
  shape = tf.shape(pasted['masks'])[1:3]
  height, width = shape[0], shape[1]
  scale = tf.cast(tf.stack([height, width, height, width]), tf.float32)
  return {
      'source_id': source_id,
      'image': tf.cast(tf.round(tf.clip_by_value(pasted['image'], 0, 255)),
                       tf.uint8),
      'height': height,
      'width': width,
      'groundtruth_classes': pasted['classes'],
      'groundtruth_is_crowd': pasted['is_crowd'],
      'groundtruth_area': tf.reduce_sum(pasted['masks'], axis=[1, 2]),
      'groundtruth_boxes': pasted['boxes'] / scale,
      'groundtruth_instance_masks': pasted['masks'],
  }


def copy_paste(target: Dict[str, tf.Tensor], source: Dict[str, tf.Tensor],
               options: CopyPasteOptions,
               seed: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Jitters both decoded examples and pastes; returns a decoded example.

  `seed` (int32 [2]) determines everything random for this pair.
  """
  target_seed, source_seed, paste_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 3))
  pasted = paste(jitter(target, options, target_seed),
                 jitter(source, options, source_seed), options, paste_seed)
  return as_decoded(pasted, target['source_id'])


def sample_fn(options: CopyPasteOptions, shuffle_buffer_size: int
             ) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """A Model Garden `sample_fn`: decoded stream -> Copy-Paste stream.

  The source stream is the same decoded stream, shuffled on its own; each
  pair gets its own stateless seed (from `options.seed` and its index).
  """
  def apply(dataset: tf.data.Dataset) -> tf.data.Dataset:
    sources = dataset.shuffle(shuffle_buffer_size, seed=options.seed)
    seeds = tf.data.Dataset.counter().map(
        lambda i: tf.stack([tf.constant(options.seed, tf.int64), i]))
    return tf.data.Dataset.zip((dataset, sources, seeds)).map(
        lambda target, source, seed: copy_paste(
            target, source, options, tf.cast(seed, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE)
  return apply
