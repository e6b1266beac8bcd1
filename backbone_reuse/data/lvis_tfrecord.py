r"""LVIS v1 JSON + COCO image folders -> TFRecords for Model Garden.

  python -m backbone_reuse.data.lvis_tfrecord \
    --lvis_json=lvis_v1_train.json --image_dirs=coco/train2017,coco/val2017 \
    --output_prefix=lvis/train --num_shards=256

Each image becomes one tf.Example written by Model Garden's COCO converter
(`create_coco_tf_record.create_tf_example`, the features its TfExampleDecoder
reads), with
  * class labels = contiguous class indices (`category_map`; the identity for
    LVIS v1), so a 1203-category set trains a 1204-way head;
  * LVIS's federated fields kept per image as int64 lists of category ids:
    `image/neg_category_ids`, `image/not_exhaustive_category_ids`;
  * a `{output_prefix}_categories.json` beside the shards: per category its
    id, class index, name, `frequency`, `image_count`, `instance_count`.
LVIS v1 images carry `coco_url` instead of `file_name` (val images come from
both COCO train2017 and val2017); the file name is the URL's last part,
looked up in every `--image_dirs` folder.
"""
from backbone_reuse.data import lvis_conversion


def main(_):
  values = flags.FLAGS
  pattern = lvis_conversion.convert(
      values.lvis_json, values.image_dirs, values.output_prefix,
      values.num_shards, values.with_masks, values.num_processes)
  print(pattern)


if __name__ == '__main__':
  # Defined here, not at import. Model Garden's converter module, imported
  # by lvis_conversion, already defines --image_dir and --include_masks.
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('lvis_json', None, 'LVIS-format annotation JSON.')
  flags.DEFINE_list('image_dirs', [], 'Comma-separated image folders.')
  flags.DEFINE_string('output_prefix', None, 'Path prefix of the shards.')
  flags.DEFINE_integer('num_shards', 1, 'Output files.')
  flags.DEFINE_boolean('with_masks', True, 'Encode instance masks.')
  flags.DEFINE_integer('num_processes', 0, 'Worker processes (0: none).')
  flags.mark_flags_as_required(['lvis_json', 'image_dirs', 'output_prefix'])
  app.run(main)
