"""Freezing all of a Keras layer tree except some layers.

Keras' `trainable=False` reaches every sublayer and a non-trainable parent
hides its children's weights, so a layer that must keep training can only
sit under trainable ancestors. `freeze_all_except` therefore sets
trainable=False on every layer that neither is kept nor holds a kept layer,
and descends into the layers that do. Frozen BatchNorms run in inference
mode (Keras 2).
"""
import re
from typing import Callable, List, Optional

import tf_keras

from backbone_reuse.configs import strategies

_GROUP_END = re.compile(r'^block_group_l(\d+)$')


def freeze_all_except(layer: tf_keras.layers.Layer,
                      keep: Callable[[tf_keras.layers.Layer], bool]) -> None:
  """Freezes `layer`'s tree except the layers for which `keep` is True."""
  if keep(layer):
    return
  if not any(keep(m) for m in layer.submodules
             if isinstance(m, tf_keras.layers.Layer)):
    layer.trainable = False
    return
  for child in layer._flatten_layers(include_self=False, recursive=False):  # pylint: disable=protected-access
    freeze_all_except(child, keep)


def resnet_stages(backbone: tf_keras.Model) -> List[List[tf_keras.layers.Layer]]:
  """[the stem's layers, block group 1's blocks, ..., group 4's].

  Model Garden's ResNet is a functional model whose layers come in order:
  the stem, then each group's blocks followed by a linear activation named
  block_group_l{level}, which closes the group.
  """
  stages, current = [], []
  for layer in backbone.layers:
    if isinstance(layer, tf_keras.layers.InputLayer):
      continue
    if _GROUP_END.match(layer.name):
      if not stages:  # The stem is what came before the first block.
        blocks = [l for l in current if not _is_stem(l)]
        stages.append([l for l in current if l not in blocks])
        current = blocks
      stages.append(current)
      current = []
      continue
    current.append(layer)
  if len(stages) != len(strategies.RESNET_LEVELS) + 1 or current:
    raise ValueError(f'{backbone.name}: expected a stem and '
                     f'{len(strategies.RESNET_LEVELS)} block groups closed by '
                     'block_group_l{level} layers (Model Garden\'s ResNet); '
                     f'found {len(stages) - 1} groups.')
  return stages


def _is_stem(layer: tf_keras.layers.Layer) -> bool:
  """Stem layers are plain Keras layers; blocks are Model Garden's."""
  return type(layer).__module__.startswith('tf_keras')


def freeze_resnet_stages(
    backbone: tf_keras.Model, frozen_stages: int,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer]) -> None:
  """Freezes the stem and block groups 1..frozen_stages of a ResNet built
  without a regulariser; the later groups train, each of their conv kernels
  carrying `l2_regularizer` as Model Garden's ResNet would have given it."""
  stages = resnet_stages(backbone)
  if frozen_stages + 1 >= len(stages):  # Every group: the whole backbone.
    backbone.trainable = False
    return
  for stage in stages[:frozen_stages + 1]:
    for layer in stage:
      layer.trainable = False
  if l2_regularizer is None:
    return
  for stage in stages[frozen_stages + 1:]:
    for layer in stage:
      for conv in [layer, *layer.submodules]:
        if isinstance(conv, tf_keras.layers.Conv2D):
          conv.add_loss(lambda c=conv: l2_regularizer(c.kernel))
