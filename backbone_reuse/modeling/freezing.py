"""Freezing all of a Keras layer tree except some layers.

Keras' `trainable=False` reaches every sublayer and a non-trainable parent
hides its children's weights, so a layer that must keep training can only
sit under trainable ancestors. `freeze_all_except` therefore sets
trainable=False on every layer that neither is kept nor holds a kept layer,
and descends into the layers that do. Frozen BatchNorms run in inference
mode (Keras 2).
"""
from typing import Callable

import tf_keras


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
