"""The one place a detection data config's decoder is built.

Used by the R-CNN input (dataloaders/maskrcnn_input.py) and by preflight, so
that what preflight decodes is what training decodes:
  * `tfds_name` lvis -> LvisTfdsDecoder; coco -> CocoTfdsDecoder;
  * else `decoder.type` as Model Garden's MaskRCNNTask reads it:
    'simple_decoder' -> TfExampleDecoder, 'label_map_decoder' ->
    TfExampleDecoderLabelMap, with the same arguments from the same fields.
A combination none of these serves is refused by the config's validation
(configs/detection.py), so `build` raising is a defect, not a user error.
With a task's `class_category_ids` the decoded labels (category ids) become
class indices 1..K (`ClassIndexDecoder`), for every source.
"""
from typing import Callable, Dict, Sequence

from official.vision.dataloaders import tf_example_decoder
from official.vision.dataloaders import tf_example_label_map_decoder
import tensorflow as tf

from backbone_reuse.dataloaders import coco_tfds
from backbone_reuse.dataloaders import lvis_tfds
from backbone_reuse.dataloaders import tfds_names


def class_indices(decode: Callable[..., Dict[str, tf.Tensor]],
                  class_category_ids: Sequence[int]):
  """`decode` with its `groundtruth_classes` (category ids) replaced by class
  indices: class index i is class_category_ids[i - 1] (ascending). A label
  that is no id of the map fails the input pipeline, naming the label(s),
  the ids accepted and the record's source_id."""
  keys = tf.constant(sorted(int(i) for i in class_category_ids), tf.int64)

  def decoded(serialized):
    example = decode(serialized)
    labels = tf.cast(example['groundtruth_classes'], tf.int64)
    position = tf.minimum(tf.searchsorted(keys, labels, out_type=tf.int64),
                          len(class_category_ids) - 1)
    known = tf.equal(tf.gather(keys, position), labels)
    check = tf.debugging.Assert(tf.reduce_all(known), [
        'class label(s)', tf.boolean_mask(labels, tf.logical_not(known)),
        'of the record with source_id', example.get('source_id', ''),
        'are not category ids of task.class_category_ids:', keys],
                                summarize=len(class_category_ids))
    with tf.control_dependencies([check]):
      example['groundtruth_classes'] = tf.cast(
          position + 1, example['groundtruth_classes'].dtype)
    return example
  return decoded


class ClassIndexDecoder:
  """A decoder whose labels are class indices (see `class_indices`)."""

  def __init__(self, decoder, class_category_ids: Sequence[int]):
    self.decode = class_indices(decoder.decode, class_category_ids)


def build(model_config, data_config, class_category_ids: Sequence[int] = ()):
  """The decoder (`.decode(example)`) for `data_config`'s records; with
  `class_category_ids` (a task's), its labels are class indices."""
  decoder = _build(model_config, data_config)
  if class_category_ids:
    return ClassIndexDecoder(decoder, class_category_ids)
  return decoder


def _build(model_config, data_config):
  if data_config.tfds_name:
    family = tfds_names.family(data_config.tfds_name)
    if family == tfds_names.LVIS:
      return lvis_tfds.LvisTfdsDecoder()
    if family == tfds_names.COCO:
      return coco_tfds.CocoTfdsDecoder()
    raise ValueError(f'tfds_name={data_config.tfds_name!r} has no decoder; '
                     f'accepted: {", ".join(tfds_names.ACCEPTED)}.')
  include_mask = getattr(model_config, 'include_mask', False)
  decoder = data_config.decoder
  if decoder.type == 'label_map_decoder':
    config = decoder.label_map_decoder
    return tf_example_label_map_decoder.TfExampleDecoderLabelMap(
        label_map=config.label_map, include_mask=include_mask,
        regenerate_source_id=config.regenerate_source_id,
        mask_binarize_threshold=config.mask_binarize_threshold)
  if decoder.type != 'simple_decoder':
    raise ValueError(f'decoder.type={decoder.type!r}; accepted: '
                     "'simple_decoder', 'label_map_decoder'.")
  config = decoder.simple_decoder
  return tf_example_decoder.TfExampleDecoder(
      include_mask=include_mask,
      regenerate_source_id=config.regenerate_source_id,
      mask_binarize_threshold=config.mask_binarize_threshold)
