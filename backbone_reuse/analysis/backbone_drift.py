"""How far a trained backbone moved from the checkpoint it started from,
and how much of that checkpoint's classifier still works on top of it.

The paper explains fine-tuning's loss at long schedules by the backbone
moving away from its pre-trained initialisation; these two numbers measure
that: the relative L2 distance of each block group's weights from the
upstream checkpoint, and the upstream validation top-1 of the trained
backbone under the upstream run's own classification head.
"""
from typing import Dict, Iterable, List, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.modeling import freezing

# Variables that gradients do not train: left out of the distance (a
# fine-tuned BatchNorm re-estimates its statistics on the new data even
# where its scale and offset barely move).
_STATISTICS = ('moving_mean', 'moving_variance')


def stage_names(count: int) -> List[str]:
  """'stem', 'group1', ... for a backbone of `count` stages."""
  return ['stem', *(f'group{i}' for i in range(1, count))]


def _paired_weights(backbone: tf_keras.Model, reference: tf_keras.Model
                   ) -> List[Tuple[tf.Variable, tf.Variable]]:
  """Each weight of `backbone` with its counterpart in `reference`, the same
  architecture: the variable at the same object path (weight lists are not
  in one order: Keras puts trainable weights first, and freezing changes
  which those are)."""
  mine = {path: v for path, v in
          backbone_checkpoint.variables_by_path(backbone).values()}
  theirs = {path: v for path, v in
            backbone_checkpoint.variables_by_path(reference).values()}
  if set(mine) != set(theirs):
    differ = sorted(set(mine) ^ set(theirs))
    raise ValueError(f'{backbone.name} and {reference.name} are not the same '
                     f'architecture: {len(differ)} variable(s) in only one, '
                     f'e.g. {differ[:3]}')
  for path, variable in mine.items():
    if variable.shape != theirs[path].shape:
      raise ValueError(f'{path}: {variable.shape} vs {theirs[path].shape}: '
                       'not the same architecture.')
  return [(mine[path], theirs[path]) for path in sorted(mine)]


def relative_distances(backbone: tf_keras.Model,
                       reference: tf_keras.Model) -> Dict[str, float]:
  """Per stage ('stem', 'group1', ...): ||w - w0|| / ||w0|| over the
  stage's trained-kind weights (kernels, BatchNorm scale and offset), w
  from `backbone` and w0 from `reference`, the same architecture (e.g. the
  upstream checkpoint restored into a second build)."""
  stages = freezing.backbone_stages(backbone)
  stage_of = {}
  for index, stage in enumerate(stages):
    for layer in stage:
      for weight in layer.weights:
        stage_of.setdefault(id(weight), index)
  moved = np.zeros(len(stages))
  norm = np.zeros(len(stages))
  for mine, theirs in _paired_weights(backbone, reference):
    if any(s in mine.name for s in _STATISTICS):
      continue
    if id(mine) not in stage_of:
      raise ValueError(f'{mine.name} belongs to no stage of {backbone.name}')
    index = stage_of[id(mine)]
    w, w0 = mine.numpy().astype(np.float64), theirs.numpy().astype(np.float64)
    moved[index] += np.sum((w - w0) ** 2)
    norm[index] += np.sum(w0 ** 2)
  return {name: float(np.sqrt(m / n))
          for name, m, n in zip(stage_names(len(stages)), moved, norm)}


def copy_backbone(source: tf_keras.Model, target: tf_keras.Model) -> None:
  """Every weight of `source` (statistics included) into `target`, the same
  architecture."""
  for mine, theirs in _paired_weights(source, target):
    theirs.assign(mine)


def top1(model: tf_keras.Model, batches: Iterable) -> float:
  """Top-1 accuracy of a classifier over (images, labels) batches; labels
  are class indices or one-hot."""
  correct = total = 0
  for images, labels in batches:
    predicted = tf.argmax(model(images, training=False), axis=-1)
    if labels.shape.rank == 2:
      labels = tf.argmax(labels, axis=-1)
    correct += int(tf.reduce_sum(tf.cast(
        predicted == tf.cast(labels, predicted.dtype), tf.int64)))
    total += int(labels.shape[0])
  if not total:
    raise ValueError('no validation batches: nothing to score')
  return correct / total
