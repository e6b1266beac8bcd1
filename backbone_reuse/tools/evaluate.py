r"""Evaluates a detections file against COCO or LVIS ground truth.

  python -m backbone_reuse.tools.evaluate --annotation_file=GT.json \
    --detections_file=DETS.json --dataset=coco|lvis [--iou_type=bbox|segm] \
    [--train_annotation_file=TRAIN.json] [--plot_file=PER_CLASS.png]

Prints every metric as one JSON object on stdout: COCO via pycocotools (plus
per-class AP and rare/common/frequent AP when categories carry LVIS
`frequency`), LVIS via the official LVIS API (see evaluation/lvis_metrics.py),
and under "stratified" each class's AP with its training annotations (from
--train_annotation_file, else LVIS's `instance_count`) and means by frequency
group and object size (evaluation/stratified.py); --plot_file draws per-class
AP against training annotations. Bad input prints one line on stderr and
exits with status 2. The checks and the scoring: evaluation/files.py.
"""
import json

from absl import app
from absl import flags

from backbone_reuse import errors
from backbone_reuse.evaluation import files


def main(_):
  values = flags.FLAGS
  try:
    metrics = files.evaluate_files(
        values.annotation_file, values.detections_file, values.dataset,
        values.iou_type, values.train_annotation_file, values.plot_file)
  except errors.BadInput as error:
    errors.report_bad_input(error)
  print(json.dumps(metrics))


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('annotation_file', None,
                      'COCO- or LVIS-format ground-truth JSON.')
  flags.DEFINE_string('detections_file', None,
                      'JSON list of results: image_id, category_id, score, '
                      'bbox [x, y, w, h] and, for segm, RLE segmentation.')
  flags.DEFINE_string('dataset', 'coco', 'coco or lvis.')
  flags.DEFINE_string('iou_type', 'bbox', 'bbox or segm.')
  flags.DEFINE_string('train_annotation_file', '',
                      'Training-split JSON, for per-class annotation counts.')
  flags.DEFINE_string('plot_file', '',
                      'Also draw per-class AP vs training annotations here.')
  app.run(main)
