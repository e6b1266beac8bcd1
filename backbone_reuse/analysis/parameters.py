"""Trainable-parameter accounting (the paper's Table 3), per top-level module."""
import json
import os
from typing import Dict, Iterable, Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from backbone_reuse.modeling import adapters

FILENAME = 'parameters.json'


def _count(variables: Iterable[tf.Variable]) -> int:
  return int(sum(np.prod(v.shape.as_list()) for v in variables))


def _flatten(module) -> list:
  """A module, or the list of modules (e.g. cascade detection heads)."""
  return list(module) if isinstance(module, (list, tuple)) else [module]


def count_parameters(model: tf_keras.Model) -> Dict:
  """Counts total and trainable parameters, overall and per module.

  Modules are the model's `checkpoint_items` (backbone, decoder, rpn_head,
  detection_head, mask_head, head, ...), plus `adapters` (residual adapters,
  counted apart from the backbone they sit in); variables outside them, if
  any, are reported as `other`. "Total" counts every variable, including BatchNorm
  moving statistics.

  Args:
    model: a built Model Garden detection or classification model.

  Returns:
    A JSON-serialisable dict.
  """
  modules = {}
  seen = set()
  for name, module in model.checkpoint_items.items():
    parts = _flatten(module)
    weights = [w for part in parts for w in part.weights]
    trainable = [w for part in parts for w in part.trainable_weights]
    seen.update(w.ref() for w in weights)
    modules[name] = {'total': _count(weights), 'trainable': _count(trainable)}
  # Residual adapters live inside the backbone but are their own module.
  adapter_weights = adapters.adapter_variables(model.backbone) if hasattr(
      model, 'backbone') else []
  if adapter_weights and 'backbone' in modules:
    trainable_refs = {w.ref() for w in model.trainable_weights}
    counts = {'total': _count(adapter_weights),
              'trainable': _count(w for w in adapter_weights
                                  if w.ref() in trainable_refs)}
    modules['adapters'] = counts
    for key in ('total', 'trainable'):
      modules['backbone'][key] -= counts[key]
  other = [w for w in model.weights if w.ref() not in seen]
  if other:
    modules['other'] = {
        'total': _count(other),
        'trainable': _count(w for w in other if w.trainable),
    }
  total = _count(model.weights)
  trainable = _count(model.trainable_weights)
  return {
      'total_params': total,
      'trainable_params': trainable,
      'trainable_percent': round(100.0 * trainable / total, 2) if total else 0,
      'modules': modules,
  }


def log_and_write(model: tf_keras.Model,
                  model_dir: Optional[str]) -> Dict:
  """Logs the parameter counts and writes MODEL_DIR/parameters.json."""
  counts = count_parameters(model)
  lines = [f'{name:>16s}: {c["trainable"]:>12,d} trainable of '
           f'{c["total"]:>12,d}' for name, c in counts['modules'].items()]
  logging.info('Parameters: %s trainable of %s (%.2f%%)\n%s',
               f'{counts["trainable_params"]:,d}',
               f'{counts["total_params"]:,d}', counts['trainable_percent'],
               '\n'.join(lines))
  if model_dir:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, FILENAME), 'w') as f:
      json.dump(counts, f, indent=2)
  return counts
