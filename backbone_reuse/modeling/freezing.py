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

from official.vision.modeling.backbones import efficientnet
from official.vision.modeling.backbones import resnet
from official.vision.modeling.backbones import vit
from official.vision.modeling.layers import nn_blocks
import tf_keras

from backbone_reuse.configs import strategies
from backbone_reuse.modeling import plain_vit

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
  stages, current = _split_groups(
      backbone, lambda layer, _: bool(_GROUP_END.match(layer.name)),
      lambda layer: not _is_stem(layer))
  if len(stages) != len(strategies.RESNET_LEVELS) + 1 or current:
    raise ValueError(f'{backbone.name}: expected a stem and '
                     f'{len(strategies.RESNET_LEVELS)} block groups closed by '
                     'block_group_l{level} layers (Model Garden\'s ResNet); '
                     f'found {len(stages) - 1} groups.')
  return stages


def _split_groups(backbone, closes, is_block):
  """(stages, the layers after the last group) of a functional backbone
  whose layers come in order: the stem, then each group's blocks followed by
  a layer that `closes(layer, the group so far)` the group. The stem is what
  came before the first block (`is_block`)."""
  stages, current = [], []
  for layer in backbone.layers:
    if isinstance(layer, tf_keras.layers.InputLayer):
      continue
    if closes(layer, current):
      if not stages:
        blocks = [l for l in current if is_block(l)]
        stages.append([l for l in current if l not in blocks])
        current = blocks
      stages.append(current)
      current = []
      continue
    current.append(layer)
  return stages, current


def efficientnet_stages(
    backbone: tf_keras.Model) -> List[List[tf_keras.layers.Layer]]:
  """[the stem's layers, block group 0's blocks, ..., group 6's blocks and
  the final 1x1 conv with its norm].

  Model Garden's EfficientNet is a functional model whose layers come in
  order: the stem, then each group's MBConv blocks followed by the
  tf.identity that closes the group, then the final conv. That conv feeds
  only what comes after the last group, so it goes with it.
  """
  def is_block(layer):
    return isinstance(layer, nn_blocks.InvertedBottleneckBlock)
  stages, current = _split_groups(
      backbone, lambda layer, current: (layer.name.startswith('tf.identity')
                                        and current and is_block(current[-1])),
      is_block)
  groups = strategies.EFFICIENTNET_GROUPS
  if len(stages) != groups + 1:
    raise ValueError(f'{backbone.name}: expected a stem and {groups} block '
                     'groups closed by tf.identity layers (Model Garden\'s '
                     f'EfficientNet); found {len(stages) - 1} groups.')
  stages[-1] += current  # The final conv, its norm and activation.
  return stages


def backbone_stages(
    backbone: tf_keras.Model) -> List[List[tf_keras.layers.Layer]]:
  """The stem and block groups of a Model Garden ResNet or EfficientNet; a
  plain ViT's embeddings and transformer blocks (plain_vit.stages)."""
  if isinstance(backbone, resnet.ResNet):
    return resnet_stages(backbone)
  if isinstance(backbone, efficientnet.EfficientNet):
    return efficientnet_stages(backbone)
  if isinstance(backbone, vit.VisionTransformer):
    return plain_vit.stages(backbone)
  raise ValueError(f'{type(backbone).__name__} has no block groups to '
                   'freeze; accepted: a ResNet, an EfficientNet or a plain '
                   'ViT.')


def _is_stem(layer: tf_keras.layers.Layer) -> bool:
  """Stem layers are plain Keras layers; blocks are Model Garden's."""
  return type(layer).__module__.startswith('tf_keras')


# Layers whose kernel Model Garden's backbones regularise: convolutions
# (not depthwise ones) and a ViT's pre-logits Dense. Not a ViT block's
# projections: Model Garden's TransformerEncoderBlock (2.20) takes a
# kernel_regularizer but does not pass it on, so a fine-tuned ViT's blocks
# carry no L2 term either.
_REGULARISED = (tf_keras.layers.Conv2D, tf_keras.layers.Dense)


def freeze_stages(
    backbone: tf_keras.Model, frozen_stages: int,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer]) -> None:
  """Freezes the stem and block groups 1..frozen_stages of a ResNet or an
  EfficientNet (a plain ViT: its embeddings and blocks 1..frozen_stages)
  built without a regulariser; the later groups train, each of their
  kernels carrying `l2_regularizer` as Model Garden's backbone would have
  given it (an EfficientNet's depthwise kernels carry none there)."""
  stages = backbone_stages(backbone)
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
        if isinstance(conv, _REGULARISED):
          conv.add_loss(lambda c=conv: l2_regularizer(c.kernel))
