"""TFDS's `coco/2017` (and `coco/2014`) with COCO's own category ids.

TFDS stores `objects/label` as an index over the 80 categories as its
instances file lists them (by id: 1..90 with gaps). Model Garden's
MSCOCODecoder passes that index through, so with an R-CNN the first class
(person, label 0) would be the ROI sampler's background, and every label
would disagree with the category ids of `instances_val2017.json`, which the
COCO evaluator scores against. `CocoTfdsDecoder` is Model Garden's decoder
with each label mapped to its COCO category id, as Model Garden's COCO
TFRecords carry them: the 91-class heads and the evaluator then see the same
ids whichever source trained the model. TFDS coco carries no instance masks,
so it serves box-only detectors (configs/detection.py refuses Mask R-CNN).
"""
from official.vision.dataloaders import tfds_detection_decoders
import tensorflow as tf

# COCO's 80 category ids in id order: TFDS label i is COCO_CATEGORY_IDS[i].
COCO_CATEGORY_IDS = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66),
    67, 70, *range(72, 83), *range(84, 91))


class CocoTfdsDecoder(tfds_detection_decoders.MSCOCODecoder):
  """Model Garden's TFDS coco decoder, labels as COCO category ids."""

  def decode(self, serialized_example):
    decoded = super().decode(serialized_example)
    decoded['groundtruth_classes'] = tf.gather(
        tf.constant(COCO_CATEGORY_IDS, tf.int64),
        tf.cast(decoded['groundtruth_classes'], tf.int64))
    return decoded
