r"""COCO-format JSON + images -> TFRecords, with Model Garden's own converter.

  python -m backbone_reuse.data.coco_tfrecord --annotation_file=JSON \
      --image_dir=DIR --output_prefix=PREFIX [--num_shards=N] [--include_masks]

Any COCO-format instances file (your own dataset's too: category ids need not
be contiguous; the records keep them as they are, Model Garden's convention,
so a detector needs `task.model.num_classes` >= the largest id + 1). The file
is checked first: one line refuses a JSON that is not COCO instances, or one
whose images are not all in DIR (naming the first missing ones). Then
`official.vision.data.create_coco_tf_record` (the tool a COCO user runs) runs
in a subprocess, so the data goes through exactly COCO's code path, and every
image is checked to have become a record. Prints the shards' glob (the
`input_path` to train on). Exit code 2 on bad input.
"""
from backbone_reuse import errors
from backbone_reuse.data import coco_conversion


def main(_):
  values = flags.FLAGS
  try:
    pattern = coco_conversion.convert(
        values.annotation_file, values.image_dir, values.output_prefix,
        values.num_shards, values.include_masks)
  except errors.BadInput as error:
    errors.report_bad_input(error)
  print(pattern)


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('annotation_file', None, 'COCO instances JSON.')
  flags.DEFINE_string('image_dir', None, "Folder of the JSON's file_names.")
  flags.DEFINE_string('output_prefix', None,
                      'Path prefix of the shards (PREFIX-0000i-of-0000n).')
  flags.DEFINE_integer('num_shards', 1, 'Output files.')
  flags.DEFINE_boolean('include_masks', False,
                       'Encode instance masks (Mask R-CNN needs them).')
  flags.mark_flags_as_required(['annotation_file', 'image_dir',
                                'output_prefix'])
  app.run(main)
