"""R-CNN input with repeat-factor sampling, Copy-Paste and/or TFDS data.

Model Garden's InputReader has the hooks these need -- a decoder of TFDS
examples, and `sample_fn`, a transform of the decoded stream applied before
the parser -- but its MaskRCNNTask.build_inputs reads TFRecords only and
passes no `sample_fn`. `build` therefore builds the decoder
(dataloaders/decoders.py: the TFRecord decoder `decoder.type` names, or a
TFDS `lvis` / `coco` decoder; labels mapped to class indices when the task
has `class_category_ids`), the same parser as Model Garden's
task (the same arguments from the same config fields) and the reader, with
repeat-factor sampling and then Copy-Paste as the `sample_fn` when enabled.
With Copy-Paste the parser's own flip and scale jitter are switched off
(`aug_scale_min = aug_scale_max = 1`, no flip): Copy-Paste already jittered
both images to the output size with those settings.
"""
from typing import Optional

from official.common import dataset_fn as dataset_fn_lib
from official.vision.dataloaders import input_reader
from official.vision.dataloaders import input_reader_factory
from official.vision.dataloaders import maskrcnn_input
import tensorflow as tf

from backbone_reuse.dataloaders import copy_paste
from backbone_reuse.dataloaders import decoders
from backbone_reuse.dataloaders import repeat_factor


def copy_paste_options(task_config, params) -> copy_paste.CopyPasteOptions:
  config = params.parser.copy_paste
  return copy_paste.CopyPasteOptions(
      output_size=tuple(task_config.model.input_size[:2]),
      aug_scale_min=params.parser.aug_scale_min,
      aug_scale_max=params.parser.aug_scale_max,
      aug_rand_hflip=params.parser.aug_rand_hflip,
      blend_sigma=config.blend_sigma,
      min_visible_pixels=config.min_visible_pixels,
      min_visible_fraction=config.min_visible_fraction,
      max_num_instances=params.parser.max_num_instances,
      seed=config.seed)


def needed(params, class_category_ids=()) -> bool:
  """Model Garden's own build_inputs cannot read this data config (or map
  its labels to class indices)."""
  return bool(
      class_category_ids or
      (params.is_training and params.parser.copy_paste.enabled) or
      (params.is_training and params.repeat_factor_sampling.threshold > 0) or
      bool(params.tfds_name))


def _sample_fn(task_config, params):
  """Repeat-factor sampling, then Copy-Paste, as configured (or None)."""
  steps = []
  sampling = params.repeat_factor_sampling
  if params.is_training and sampling.threshold > 0:
    steps.append(repeat_factor.sample_fn(
        repeat_factor.class_image_fractions(sampling.annotation_file),
        sampling.threshold, sampling.seed))
  if params.is_training and params.parser.copy_paste.enabled:
    steps.append(copy_paste.sample_fn(
        copy_paste_options(task_config, params),
        params.parser.copy_paste.source_shuffle_buffer_size))
  if not steps:
    return None

  def apply(dataset):
    for step in steps:
      dataset = dataset.apply(step)
    return dataset
  return apply


def build(task_config, params,
          input_context: Optional[tf.distribute.InputContext] = None,
          dataset_fn=None) -> tf.data.Dataset:
  """A Mask R-CNN task's dataset (see the module docstring)."""
  model = task_config.model
  parser_config = params.parser
  pasting = params.is_training and parser_config.copy_paste.enabled
  decoder = decoders.build(model, params, task_config.class_category_ids)
  parser = maskrcnn_input.Parser(
      output_size=model.input_size[:2],
      min_level=model.min_level,
      max_level=model.max_level,
      num_scales=model.anchor.num_scales,
      aspect_ratios=model.anchor.aspect_ratios,
      anchor_size=model.anchor.anchor_size,
      rpn_match_threshold=parser_config.rpn_match_threshold,
      rpn_unmatched_threshold=parser_config.rpn_unmatched_threshold,
      rpn_batch_size_per_im=parser_config.rpn_batch_size_per_im,
      rpn_fg_fraction=parser_config.rpn_fg_fraction,
      aug_rand_hflip=False if pasting else parser_config.aug_rand_hflip,
      aug_rand_vflip=parser_config.aug_rand_vflip,
      aug_scale_min=1.0 if pasting else parser_config.aug_scale_min,
      aug_scale_max=1.0 if pasting else parser_config.aug_scale_max,
      aug_type=parser_config.aug_type,
      skip_crowd_during_training=parser_config.skip_crowd_during_training,
      max_num_instances=parser_config.max_num_instances,
      include_mask=model.include_mask,
      outer_boxes_scale=model.outer_boxes_scale,
      mask_crop_size=parser_config.mask_crop_size,
      dtype=params.dtype)
  reader = input_reader_factory.input_reader_generator(
      params,
      dataset_fn=dataset_fn or dataset_fn_lib.pick_dataset_fn(
          params.file_type),
      decoder_fn=decoder.decode,
      combine_fn=input_reader.create_combine_fn(params),
      sample_fn=_sample_fn(task_config, params),
      parser_fn=parser.parse_fn(params.is_training))
  return reader.read(input_context=input_context)
