"""TFDS's `lvis` dataset as Model Garden decoded examples.

TFDS stores LVIS v1 with `objects/label` = category id - 1 (a ClassLabel
over the 1203 categories), normalised boxes, and one 0/255 mask image per
object. `LvisTfdsDecoder` turns an example into what Model Garden's
TfExampleDecoder yields for the same image from our TFRecords
(data/lvis_tfrecord.py): class index = category id (1..1203), float 0/1
masks, no crowd objects. Use it with `task.train_data.tfds_name: lvis`.
"""
import tensorflow as tf

class LvisTfdsDecoder:
  """Model Garden decoder interface (`decode`) for TFDS `lvis` examples."""

  def decode(self, example):
    objects = example['objects']
    image = example['image']
    return {
        'source_id': tf.strings.as_string(example['image/id']),
        'image': image,
        'height': tf.cast(tf.shape(image)[0], tf.int64),
        'width': tf.cast(tf.shape(image)[1], tf.int64),
        'groundtruth_classes': tf.cast(objects['label'], tf.int64) + 1,
        'groundtruth_is_crowd': tf.zeros_like(objects['label'], tf.bool),
        'groundtruth_area': tf.cast(objects['area'], tf.float32),
        'groundtruth_boxes': tf.cast(objects['bbox'], tf.float32),
        'groundtruth_instance_masks': tf.cast(
            objects['segmentation'][..., 0] > 127, tf.float32),
    }
