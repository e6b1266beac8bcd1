"""The one place a detection data config's decoder is built.

Used by the R-CNN input (dataloaders/maskrcnn_input.py) and by preflight, so
that what preflight decodes is what training decodes:
  * `tfds_name` lvis -> LvisTfdsDecoder; coco -> CocoTfdsDecoder;
  * else `decoder.type` as Model Garden's MaskRCNNTask reads it:
    'simple_decoder' -> TfExampleDecoder, 'label_map_decoder' ->
    TfExampleDecoderLabelMap, with the same arguments from the same fields.
A combination none of these serves is refused by the config's validation
(configs/detection.py), so `build` raising is a defect, not a user error.
"""
from official.vision.dataloaders import tf_example_decoder
from official.vision.dataloaders import tf_example_label_map_decoder

from backbone_reuse.dataloaders import coco_tfds
from backbone_reuse.dataloaders import lvis_tfds
from backbone_reuse.dataloaders import tfds_names


def build(model_config, data_config):
  """The decoder (`.decode(example)`) for `data_config`'s records."""
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
