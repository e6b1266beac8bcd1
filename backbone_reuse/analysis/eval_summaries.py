"""Reads the scalars Model Garden wrote as TensorBoard summaries."""
import os
from typing import Dict, Tuple

import tensorflow as tf

# What `backbone_reuse.train` writes in MODEL_DIR after its last evaluation:
# {'step': N, 'metrics': {name: value}}.
METRICS_FILENAME = 'metrics.json'


def read_scalars(model_dir: str,
                 subdir: str) -> Dict[int, Dict[str, float]]:
  """{step: {tag: value}} of every scalar summary under model_dir/subdir."""
  by_step: Dict[int, Dict[str, float]] = {}
  pattern = os.path.join(model_dir, subdir, 'events.out.tfevents.*')
  for path in sorted(tf.io.gfile.glob(pattern)):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.HasField('tensor'):
          array = tf.make_ndarray(value.tensor)
          if array.ndim != 0:
            continue
          number = float(array)
        else:
          number = float(value.simple_value)
        by_step.setdefault(int(event.step), {})[value.tag] = number
  return by_step


def read_last_eval(model_dir: str,
                   subdir: str = 'validation') -> Tuple[int, Dict[str, float]]:
  """Returns (step, {tag: value}) of the last evaluation under `model_dir`.

  Args:
    model_dir: the experiment's model dir.
    subdir: where the evaluation summaries live (Model Garden: 'validation').

  Returns:
    The highest step that has summaries and its scalar values; (-1, {}) when
    there are none.
  """
  by_step = read_scalars(model_dir, subdir)
  if not by_step:
    return -1, {}
  step = max(by_step)
  return step, by_step[step]
