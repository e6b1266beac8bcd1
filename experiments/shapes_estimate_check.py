r"""How close `reproduce --estimate`'s numbers come to what the Shapes grid
measured (issue 25): the estimate of each capacity's freeze and fine-tune
detector (analysis/estimate.py; no data, nothing trained) against the
committed grid records of the same cells (large upstream, the grid's
schedule, every seed with both records).

  PYTHONPATH=. python experiments/shapes_estimate_check.py \
      [--report_dir=experiments/shapes/report] \
      [--output=experiments/shapes/estimate_check.md]

Compared, as fine-tune / freeze ratios (what the estimate is for: which
strategy costs how much more) and in absolute terms:
  * estimated training FLOPs per step vs the measured median step time;
  * estimated memory per replica (one replica: the grid trains on one CPU
    device) vs TF's allocator peak on the CPU device;
  * the estimate's FLOPs per step (one image traced, x batch) vs the FLOPs
    the grid counted on a real batch of the run (the same counter).
"""
import json
import os
import pathlib
import statistics
from typing import Dict, List

from absl import app
from absl import flags

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.analysis import estimate
from backbone_reuse.shapes import experiments as shapes_experiments
from backbone_reuse.shapes import design
from backbone_reuse.shapes import grid_runner
from backbone_reuse.shapes import runs

REPO = pathlib.Path(__file__).resolve().parents[1]
_REPORT_DIR = flags.DEFINE_string(
    'report_dir', str(REPO / 'experiments' / 'shapes' / 'report'),
    'The grid report whose runs/*.json hold the measurements.')
_OUTPUT = flags.DEFINE_string(
    'output', str(REPO / 'experiments' / 'shapes' / 'estimate_check.md'),
    'Markdown report to write.')
STRATEGIES = ('freeze', 'finetune')
CPU = '/device:CPU:0'


def _records(report_dir: str, capacity: str) -> List[Dict[str, Dict]]:
  """Per seed with both records: {strategy: record}."""
  paired = []
  for seed in range(20):
    pair = {}
    for strategy in STRATEGIES:
      name = design.Run(capacity, strategy, 'large', seed).name
      path = os.path.join(report_dir, 'runs', f'{name}.json')
      if os.path.isfile(path):
        with open(path) as f:
          pair[strategy] = json.load(f)
    if len(pair) == len(STRATEGIES):
      paired.append(pair)
  return paired


def _measured(pairs: List[Dict[str, Dict]], strategy: str) -> Dict:
  records = [pair[strategy] for pair in pairs]
  return {
      'step_seconds': statistics.mean(
          r['resources']['median_step_seconds'] for r in records),
      'tf_peak_mib': statistics.mean(
          r['resources']['tf_peak_memory_mb'][CPU] for r in records),
      'flops_per_step': statistics.mean(
          r['flops_per_step']['total'] for r in records),
  }


def _estimated(capacity: str, strategy: str) -> Dict:
  run = design.Run(capacity, strategy, 'large', 0)
  params = runs.Training(
      grid_runner.DETECTOR, run.config_files(),
      {'task': {'init_checkpoint': 'estimated/only'}}).params()
  return estimate.estimate(params, replicas=1)


def main(_):
  rows = []
  for capacity in shapes_experiments.CAPACITIES:
    pairs = _records(_REPORT_DIR.value, capacity)
    if not pairs:
      print(f'{capacity}: no seed with both records; skipped.')
      continue
    measured = {s: _measured(pairs, s) for s in STRATEGIES}
    estimated = {s: _estimated(capacity, s) for s in STRATEGIES}
    rows.append((capacity, len(pairs), measured, estimated))
    print(capacity, json.dumps(estimated, default=str)[:200], flush=True)

  def ratio(values: Dict, pick) -> float:
    return pick(values['finetune']) / pick(values['freeze'])

  lines = [
      '# The cost estimate against the Shapes grid\'s measurements',
      '',
      'Written by `PYTHONPATH=. python experiments/shapes_estimate_check.py`'
      ' from the estimate of each capacity\'s detector (large upstream; '
      '`backbone_reuse/analysis/estimate.py`, one replica) and the grid\'s '
      f'committed records in `{os.path.relpath(_REPORT_DIR.value, REPO)}/'
      'runs/` (mean over the seeds with both a freeze and a fine-tune '
      'record). Ratios are fine-tune / freeze.',
      '',
      '| capacity | seeds | est. FLOPs ratio | measured step-time ratio | '
      'est. memory ratio | measured TF-peak ratio | est. memory MiB '
      '(freeze, finetune) | measured TF peak MiB (freeze, finetune) | '
      'est. / counted FLOPs per step |',
      '|---|---|---|---|---|---|---|---|---|',
  ]
  for capacity, seeds, measured, estimated in rows:
    memory = {s: estimated[s]['memory_per_replica_bytes']['total'] / 2.0**20
              for s in STRATEGIES}
    lines.append(
        f'| {capacity} | {seeds} | '
        f'{ratio(estimated, lambda c: c["flops_per_step"]):.2f} | '
        f'{ratio(measured, lambda m: m["step_seconds"]):.2f} | '
        f'{memory["finetune"] / memory["freeze"]:.2f} | '
        f'{ratio(measured, lambda m: m["tf_peak_mib"]):.2f} | '
        f'{memory["freeze"]:.0f}, {memory["finetune"]:.0f} | '
        f'{measured["freeze"]["tf_peak_mib"]:.0f}, '
        f'{measured["finetune"]["tf_peak_mib"]:.0f} | '
        + ', '.join(f'{estimated[s]["flops_per_step"] / measured[s]["flops_per_step"]:.3f}'
                    for s in STRATEGIES) + ' |')
  lines += [
      '',
      'Step time on a CPU is not FLOPs alone (NMS, ROI sampling and the '
      'input pipeline count zero FLOPs but take time), so the step-time '
      'ratio is expected below the FLOP ratio; TF\'s allocator peak '
      'includes the input batch and transient buffers the estimate leaves '
      'out. The last column checks the estimate\'s per-image trace against '
      'the grid\'s count on a real batch of 8 (1.000: the same).',
  ]
  pathlib.Path(_OUTPUT.value).write_text('\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
