"""What a training run cost: step time, peak memory, FLOPs per step.

The paper's Figure 1 plots AP against training memory and step time; these
are the same measurements for any run of `backbone_reuse.train`:
  * step time: Model Garden's controller writes `steps_per_second` to the
    train summaries once per loop (`trainer.steps_per_loop` steps); the
    median over loops after the first (which includes tracing) is reported;
  * peak memory: the process's peak resident set (getrusage) and, where TF
    keeps allocator statistics, its own peak per device;
  * CPU share: the process's CPU seconds per wall second and the machine's
    load, so that a step time measured beside other work can be told from
    one measured alone (on 2 cores a run alone uses about 2 CPU s/s);
  * training FLOPs per step: TF's registered FLOP statistics summed over
    one traced train step (forward, gradients of the trainable variables
    only, optimizer update) -- so a frozen backbone's missing backward pass
    is counted, not assumed.
"""
import json
import os
import resource
import statistics
import time
from typing import Dict, List, Optional, Tuple

from absl import logging
import tensorflow as tf

from backbone_reuse.analysis import eval_summaries

FILENAME = 'resources.json'


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def clock() -> Tuple[float, float]:
  """(wall, CPU seconds of this process) now."""
  return time.monotonic(), _cpu_seconds()


# Before training starts (the train command imports this module, through
# training.py, before it resolves the config).
_IMPORTED = clock()


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far, in MiB (Linux: KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_share(since: Optional[Tuple[float, float]] = None) -> Dict:
  """CPU seconds of this process per wall second since `since` (a
  `clock()`; default: when this module was imported), the machine's CPU
  count and its 1-minute load average."""
  start_wall, start_cpu = since or _IMPORTED
  wall, cpu = clock()
  return {'cpu_seconds_per_second': round(
              (cpu - start_cpu) / max(wall - start_wall, 1e-9), 3),
          'cpus': os.cpu_count(),
          'load_average_1min': round(os.getloadavg()[0], 2)}


def tf_peak_memory_mb() -> Dict[str, float]:
  """TF allocator peak per visible device, where TF tracks it."""
  peaks = {}
  for device in tf.config.list_logical_devices():
    try:
      info = tf.config.experimental.get_memory_info(device.name)
    except (ValueError, tf.errors.OpError):
      continue  # This device keeps no allocator statistics.
    peaks[device.name] = info['peak'] / 2.0**20
  return peaks


def train_steps_per_second(model_dir: str,
                           subdir: str = 'train') -> List[float]:
  """`steps_per_second` of each training loop, in step order."""
  by_step = eval_summaries.read_scalars(model_dir, subdir)
  return [by_step[s]['steps_per_second'] for s in sorted(by_step)
          if 'steps_per_second' in by_step[s]]


def median_step_seconds(steps_per_second: List[float]) -> Optional[float]:
  """Median seconds per step over the loops after the first (warm-up).

  With a single loop there is nothing after warm-up; it is used as is.
  """
  rates = steps_per_second[1:] or steps_per_second
  rates = [r for r in rates if r > 0]
  return 1.0 / statistics.median(rates) if rates else None


def trace_train_step(task, model, params, inputs=None):
  """The graph of one `task.train_step` (the function Model Garden's trainer
  runs) on one batch, with a fresh optimizer; `inputs` default: the first
  batch of `params.task.train_data`. Returns (graph, optimizer)."""
  optimizer = task.create_optimizer(params.trainer.optimizer_config,
                                    params.runtime)
  if inputs is None:
    inputs = next(iter(task.build_inputs(params.task.train_data)))
  metrics = task.build_metrics(training=True)

  @tf.function
  def step(batch):
    return task.train_step(batch, model, optimizer, metrics=metrics)

  return step.get_concrete_function(inputs).graph, optimizer


def is_gradient_op(op) -> bool:
  """TF's tape places the ops of the backward pass under `gradient_tape/`."""
  return op.name.startswith('gradient_tape/')


def graph_flops(graph) -> Dict[str, int]:
  """{'total', 'forward', 'backward'} FLOPs of the ops of `graph` that run.

  TF's registered FLOP statistics: convolutions, matmuls, their gradients
  and elementwise arithmetic count; NMS, gathers and resizes count as zero.
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow.python.framework import ops
  counts = {'forward': 0, 'backward': 0}
  for op in executed_ops(graph):
    try:
      flops = ops.get_stats_for_node_def(graph, op.node_def, 'flops').value
    except (ValueError, TypeError):  # Shapes TF cannot resolve statically.
      flops = None
    if flops:
      counts['backward' if is_gradient_op(op) else 'forward'] += int(flops)
  counts['total'] = counts['forward'] + counts['backward']
  return counts


def train_step_flops(task, model, params, inputs=None) -> Dict[str, int]:
  """Floating-point ops of one training step of `task` on one batch (see
  `trace_train_step`, `graph_flops`). Only ops that run count (see
  `executed_ops`), so a frozen backbone's missing backward pass is counted,
  not assumed.

  Returns:
    {'total', 'forward', 'backward'} FLOPs per step (global batch).
  """
  graph, _ = trace_train_step(task, model, params, inputs)
  return graph_flops(graph)


def executed_ops(graph) -> List:
  """Ops the function's outputs or side effects depend on.

  A frozen Keras layer keeps tf.Variables with trainable=True, so the tape
  still records the backbone and builds its gradient ops; nothing consumes
  them and TF prunes them before running. Counting only the fan-in of the
  outputs and of the stateful ops (control outputs) counts what runs.
  """
  stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
  seen = set()
  executed = []
  while stack:
    op = stack.pop()
    if op.name in seen:
      continue
    seen.add(op.name)
    executed.append(op)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  return executed


def write(model_dir: str, extra: Optional[Dict] = None) -> Dict:
  """Writes MODEL_DIR/resources.json from this process and its summaries."""
  rates = train_steps_per_second(model_dir)
  record = {
      'peak_rss_mb': peak_rss_mb(),
      'tf_peak_memory_mb': tf_peak_memory_mb(),
      'train_steps_per_second': rates,
      'median_step_seconds': median_step_seconds(rates),
      'cpu': cpu_share(),
      **(extra or {}),
  }
  path = os.path.join(model_dir, FILENAME)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(record, f, indent=2, sort_keys=True)
  logging.info('Training resources written to %s', path)
  return record
