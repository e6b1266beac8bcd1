r"""Where a Shapes detector's training step spends its time, float32 vs
bfloat16, by TensorFlow's profiler (issue 26).

  python experiments/shapes_bfloat16_profile.py --data_dir=DIR \
      --init_checkpoint=UPSTREAM_DIR [--capacity=fpn] [--strategy=freeze] \
      [--steps=20] [--output=experiments/shapes_demo/bfloat16/profile.md]

DIR is a Shapes world's data folder (e.g. the grid's OUTPUT_DIR/data: it
holds detection/train-*), UPSTREAM_DIR a Shapes classification checkpoint.
Each variant builds the detector (shapes_fasterrcnn with the capacity and
strategy YAMLs, as the grid does) in one process, one after another, runs 5
warm-up training steps, times --steps more, then traces --steps more with
`tf.profiler` and sums the host self-time of every TensorFlow op, grouped
by op type (casts, NMS, convolutions, matrix products, ...) and by the
model part in the op's name (backbone, decoder, RPN, ROI generator, heads;
backward ops apart). Variants:
  float32                    what the grid and the committed demo ran
  float32, v2 NMS            Model Garden's default NMS (the issue's row)
  bfloat16, v2 NMS           before the fix: the only NMS Model Garden ran
                             in bfloat16 (batched NMS refused bfloat16 boxes)
  bfloat16, batched NMS      after: batched NMS computes in float32 inside
                             the mixed model (modeling/precision.py)
"""
import collections
import glob
import json
import os
import pathlib
import re
import shutil
import tempfile
import time
from typing import Dict, List, Tuple

from absl import app
from absl import flags
from official.core import task_factory
from official.modeling import performance
import tensorflow as tf
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin
import tf_keras

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.configs import resolve

REPO = pathlib.Path(__file__).resolve().parents[1]
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'A Shapes world data dir.')
_INIT = flags.DEFINE_string('init_checkpoint', None,
                            'A Shapes classification checkpoint (dir).')
_CAPACITY = flags.DEFINE_string('capacity', 'fpn',
                                'configs/shapes/capacity/NAME.yaml')
_STRATEGY = flags.DEFINE_string('strategy', 'freeze',
                                'configs/strategies/NAME.yaml')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps, and traced steps.')
_OUTPUT = flags.DEFINE_string(
    'output', str(REPO / 'experiments' / 'shapes_demo' / 'bfloat16' /
                  'profile.md'), 'Markdown report to write.')

_V2_NMS = {'roi_generator': {'use_batched_nms': False},
           'detection_generator': {'nms_version': 'v2'}}
VARIANTS = (('float32', 'float32', {}),
            ('float32, v2 NMS', 'float32', _V2_NMS),
            ('bfloat16, v2 NMS (before)', 'bfloat16', _V2_NMS),
            ('bfloat16, batched NMS (after)', 'bfloat16', {}))
WARMUP = 5

# Op type -> group; first match wins.
_TYPE_GROUPS = (
    ('casts', re.compile(r'^Cast$')),
    ('NMS', re.compile(r'NonMaxSuppression')),
    ('convolutions', re.compile(r'Conv2D|Conv3D|DepthwiseConv')),
    ('matrix products', re.compile(r'MatMul|Einsum')),
    ('ROI crop / gather', re.compile(r'CropAndResize|Gather|ScatterNd')),
    ('top-k / sort', re.compile(r'TopK|Sort|ArgMax|ArgMin')),
    ('batch norm', re.compile(r'BatchNorm')),
    ('optimizer', re.compile(r'^ResourceApply|^Apply')),
)
# Model parts, by the first matching name fragment.
# (part, fragments of an op name that place it there)
_PARTS = (('backbone', ('backbone', 'res_net', 'resnet')),
          ('decoder', ('decoder', 'fpn', 'nas_fpn', 'nasfpn')),
          ('rpn_head', ('rpn_head',)),
          ('roi_generator', ('roi_generator',)),
          ('roi_sampler', ('roi_sampler',)),
          ('roi_aligner', ('roi_aligner',)),
          ('detection_head', ('detection_head',)),
          ('detection_generator', ('detection_generator',)),
          ('losses', ('loss',)))


def _type_group(op_type: str) -> str:
  for group, pattern in _TYPE_GROUPS:
    if pattern.search(op_type):
      return group
  return 'other'


def _part(name: str) -> str:
  backward = name.startswith('gradient_tape/') or '/gradients/' in name
  lowered = name.lower()
  for part, fragments in _PARTS:
    if any(f in lowered for f in fragments):
      return part + (' (backward)' if backward else '')
  return 'other' + (' (backward)' if backward else '')


def _params(mixed_precision: str, model_overrides: Dict):
  data = _DATA_DIR.value
  overrides = {
      'runtime': {'mixed_precision_dtype': mixed_precision},
      'task': {'init_checkpoint': _INIT.value,
               'train_data': {'input_path': os.path.join(
                   data, 'detection', 'train-*')},
               'model': model_overrides}}
  files = [str(REPO / 'configs' / 'shapes' / 'capacity' /
               f'{_CAPACITY.value}.yaml'),
           str(REPO / 'configs' / 'strategies' / f'{_STRATEGY.value}.yaml')]
  return resolve.experiment_config('shapes_fasterrcnn', files, overrides,
                                   seed=0)


def _op_stats(trace_dir: str) -> List[Dict]:
  paths = glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'),
                    recursive=True)
  data, ok = _pywrap_profiler_plugin.xspace_to_tools_data(
      paths, 'framework_op_stats', {})
  if not ok:
    raise RuntimeError(f'the profiler could not read {paths}: {data!r}')
  table = json.loads(data)[0]
  columns = [c['id'] for c in table['cols']]
  rows = [dict(zip(columns, (cell['v'] if cell else None
                             for cell in row['c'])))
          for row in table['rows']]
  # Host ops only (this CPU has no device); IDLE is not an op.
  return [r for r in rows if r['type'] != 'IDLE']


def profile(mixed_precision: str, model_overrides: Dict) -> Dict:
  params = _params(mixed_precision, model_overrides)
  performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  task.initialize(model)
  optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                    params.runtime)
  iterator = iter(task.build_inputs(params.task.train_data))

  @tf.function
  def step(inputs):
    return task.train_step(inputs, model, optimizer)

  def run(n):
    for _ in range(n):
      logs = step(next(iterator))
    float(logs['loss'])  # Waits for the last step.

  run(WARMUP)
  start = time.perf_counter()
  run(_STEPS.value)
  seconds = (time.perf_counter() - start) / _STEPS.value
  trace_dir = tempfile.mkdtemp(prefix='bf16_profile_')
  tf.profiler.experimental.start(trace_dir)
  run(_STEPS.value)
  tf.profiler.experimental.stop()
  ops = _op_stats(trace_dir)
  shutil.rmtree(trace_dir)
  tf_keras.backend.clear_session()
  performance.set_mixed_precision_policy(tf.float32)
  total = sum(r['total_self_time'] for r in ops)
  by_type, by_part = collections.Counter(), collections.Counter()
  for r in ops:
    by_type[_type_group(r['type'])] += r['total_self_time']
    by_part[_part(r['operation'])] += r['total_self_time']
  casts = sum(r['occurrences'] for r in ops if r['type'] == 'Cast')
  by_op = collections.Counter()
  for r in ops:
    by_op[(r['type'], _part(r['operation']))] += r['total_self_time']
  return {'seconds_per_step': seconds, 'op_seconds_per_step':
          total / 1e6 / _STEPS.value, 'by_type': dict(by_type),
          'by_part': dict(by_part), 'casts_per_step': casts / _STEPS.value,
          'total': total, 'top': by_op.most_common(12)}


def _share_table(results: List[Tuple[str, Dict]], field: str,
                 title: str) -> List[str]:
  groups = sorted({g for _, r in results for g in r[field]},
                  key=lambda g: -results[0][1][field].get(g, 0))
  lines = [f'| {title} | ' + ' | '.join(n for n, _ in results) + ' |',
           '|---|' + '---|' * len(results)]
  for group in groups:
    cells = []
    for _, r in results:
      us = r[field].get(group, 0)
      cells.append(f'{us / 1e3 / _STEPS.value:.1f} ms '
                   f'({100 * us / r["total"]:.0f} %)')
    lines.append(f'| {group} | ' + ' | '.join(cells) + ' |')
  return lines


def main(_):
  if not _DATA_DIR.value or not _INIT.value:
    raise app.UsageError('--data_dir and --init_checkpoint are required.')
  results = []
  for name, mixed_precision, model_overrides in VARIANTS:
    found = profile(mixed_precision, model_overrides)
    results.append((name, found))
    print(f'{name}: {found["seconds_per_step"]:.3f} s/step '
          f'(ops {found["op_seconds_per_step"]:.3f} s/step, '
          f'{found["casts_per_step"]:.0f} casts/step)', flush=True)
  base = results[0][1]['seconds_per_step']
  cpu = [line for line in open('/proc/cpuinfo') if line.startswith('flags')]
  flags_found = sorted(set(cpu[0].split()) & {'amx_bf16', 'avx512_bf16'}
                       ) if cpu else []
  text = '\n'.join([
      '# Shapes detector training step, float32 vs bfloat16, by the profiler',
      '', f'Produced by `python experiments/shapes_bfloat16_profile.py '
      f'--capacity={_CAPACITY.value} --strategy={_STRATEGY.value} '
      f'--steps={_STEPS.value}` on this {os.cpu_count()}-CPU host (bfloat16 '
      f'flags: {", ".join(flags_found) or "none"}), one process, variants '
      f'one after another: {WARMUP} warm-up steps, {_STEPS.value} timed, '
      f'{_STEPS.value} traced (batch 8, 128 px). Op time is the host '
      'self-time TensorFlow\'s profiler (framework_op_stats) gives each op, '
      'per step; ops of both cores add up, so it can exceed wall time.', '',
      '| variant | wall s / step | relative to float32 | op time s / step |'
      ' casts / step |', '|---|---|---|---|---|',
      *[f'| {n} | {r["seconds_per_step"]:.3f} | '
        f'{r["seconds_per_step"] / base:.2f} | '
        f'{r["op_seconds_per_step"]:.3f} | {r["casts_per_step"]:.0f} |'
        for n, r in results], '',
      '## By op type', '', *_share_table(results, 'by_type', 'op type'), '',
      '## By model part (from op names)', '',
      *_share_table(results, 'by_part', 'part'), '',
      '## The most expensive (op type, part) pairs', '',
      *[line for n, r in results for line in (
          f'{n}: ' + '; '.join(
              f'{t} in {p} {us / 1e3 / _STEPS.value:.1f} ms'
              for (t, p), us in r['top']), '')]])
  pathlib.Path(_OUTPUT.value).write_text(text)
  print(text)


if __name__ == '__main__':
  app.run(main)
