r"""Times LVIS evaluation: our path (tools/evaluate) vs the LVIS API alone.

  python experiments/lvis_evaluation_time.py --annotation_file=GT.json \
    --detections_file=DETS.json [--iou_type=segm] [--repeats=3]

Both compute the same numbers (checked here to 1e-6); the difference is our
input checks, the in-memory ground truth and the per-class extraction. The
API alone needs the np.float alias on numpy >= 1.24 (numpy_float_alias).
Prints one JSON object: median seconds of each and the largest metric gap.
"""
import argparse
import json
import statistics
import time

from lvis import eval as lvis_eval
from lvis import lvis as lvis_dataset
from lvis import results as lvis_results

from backbone_reuse.evaluation import lvis_metrics
from backbone_reuse.evaluation import files as evaluation_files


def _api(annotation_file, detections_file, iou_type):
  ground_truth = lvis_dataset.LVIS(annotation_file)
  results = lvis_results.LVISResults(ground_truth, detections_file)
  evaluator = lvis_eval.LVISEval(ground_truth, results, iou_type)
  with lvis_metrics.numpy_float_alias():
    evaluator.run()
  return evaluator.results


def _timed(function, repeats):
  seconds, value = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    value = function()
    seconds.append(time.perf_counter() - start)
  return statistics.median(seconds), value


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--annotation_file', required=True)
  parser.add_argument('--detections_file', required=True)
  parser.add_argument('--iou_type', default='bbox', choices=('bbox', 'segm'))
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  ours_seconds, ours = _timed(lambda: evaluation_files.evaluate_files(
      args.annotation_file, args.detections_file, 'lvis', args.iou_type),
                              args.repeats)
  api_seconds, api = _timed(lambda: _api(
      args.annotation_file, args.detections_file, args.iou_type),
                            args.repeats)
  print(json.dumps({
      'iou_type': args.iou_type, 'repeats': args.repeats,
      'ours_seconds_median': round(ours_seconds, 3),
      'lvis_api_seconds_median': round(api_seconds, 3),
      'max_abs_metric_difference': max(abs(ours[k] - float(v))
                                       for k, v in api.items()),
      'AP': ours['AP'], 'APr': ours['APr'], 'APc': ours['APc'],
      'APf': ours['APf']}))


if __name__ == '__main__':
  main()
