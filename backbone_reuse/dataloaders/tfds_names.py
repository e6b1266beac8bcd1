"""Which TFDS datasets the detection input reads, by name (imports nothing,
so configs can validate names without TensorFlow or Keras).

A TFDS name may carry a config and a version: `coco/2017:1.1.0` is `coco`.
"""
LVIS = 'lvis'  # dataloaders/lvis_tfds.py: boxes and masks, LVIS v1 ids.
COCO = 'coco'  # dataloaders/coco_tfds.py: boxes only, COCO's ids.
ACCEPTED = (LVIS, COCO)


def family(tfds_name: str) -> str:
  return tfds_name.split('/')[0].split(':')[0]
