"""NAS-FPN with bottleneck blocks (Ghiasi et al. 2021, Copy-Paste), registered.

Model Garden's NASFPN merges two resampled feature maps per node, then
applies activation -> 3x3 conv -> BatchNorm. The variant the Copy-Paste
paper (and Table 4 of our paper) uses replaces each node's 3x3 convolution
with ResNet bottleneck blocks as in their public code: inner width
num_filters, output 4 x num_filters (a projection shortcut on the first
block, whose input is num_filters wide), so the pyramid's outputs are
4 x num_filters wide and node inputs are projected back to num_filters by
the 1x1 resampling convolutions. `BottleneckNASFPN` subclasses Model
Garden's NASFPN and changes only the node's convolution factory; Model
Garden keeps its activation before the node and its BatchNorm after it (an
extra BatchNorm over the block output that Ghiasi et al.'s version lacks).
Their two other options are here too: `use_sum_for_combination` (every node
sums, where Model Garden's topology has four global-attention nodes) and
`drop_connect_rate` (stochastic depth in every node block).

Registered as decoder type 'bottleneck_nasfpn' (config: BottleneckNASFPN in
configs/detection.py).
"""
from typing import Any, Optional

import numpy as np
from official.modeling import hyperparams
from official.vision.modeling.decoders import factory
from official.vision.modeling.decoders import nasfpn
from official.vision.modeling.layers import nn_blocks
import tf_keras

_NODE_KERNEL = (3, 3)  # Model Garden's node convolution; resampling is 1x1.


def sum_only_block_specs():
  """Model Garden's NAS-FPN topology with every node combining by sum
  (Ghiasi et al.'s `use_sum_for_combination`: no global attention)."""
  return nasfpn.build_block_specs(
      [(level, 'sum', offsets, is_output)
       for level, _, offsets, is_output in nasfpn.NASFPN_BLOCK_SPECS])


class BottleneckNASFPN(nasfpn.NASFPN):
  """NAS-FPN whose node convolutions are bottleneck blocks."""

  def __init__(self, *args, block_repeats: int = 1,
               use_sum_for_combination: bool = False,
               drop_connect_rate: float = 0.0, **kwargs):
    """Args as Model Garden's NASFPN, plus:

    Args:
      *args: Model Garden's NASFPN arguments.
      block_repeats: bottleneck blocks per node.
      use_sum_for_combination: every node sums its two inputs (else Model
        Garden's topology, where four nodes use global attention).
      drop_connect_rate: stochastic depth on every node block's residual
        branch, the same rate everywhere (Ghiasi et al.'s
        `init_drop_connect_rate`); 0 for none.
      **kwargs: Model Garden's NASFPN keyword arguments.
    """
    if block_repeats < 1:
      raise ValueError(f'block_repeats={block_repeats}; accepted: >= 1.')
    if not 0.0 <= drop_connect_rate < 1.0:
      raise ValueError(f'drop_connect_rate={drop_connect_rate}; accepted: '
                       '[0, 1).')
    self._block_repeats = block_repeats
    self._drop_connect_rate = drop_connect_rate
    if use_sum_for_combination:
      kwargs['block_specs'] = sum_only_block_specs()
    super().__init__(*args, **kwargs)
    self._config_dict.update(
        block_repeats=block_repeats,
        use_sum_for_combination=use_sum_for_combination,
        drop_connect_rate=drop_connect_rate)

  # Model Garden's NASFPN sets `_conv_op` to a conv class in __init__ and
  # calls it for the node convolution (3x3) and resampling (1x1); this
  # property hands out bottleneck blocks for the former only.
  @property
  def _conv_op(self):
    return self._node_or_conv

  @_conv_op.setter
  def _conv_op(self, conv_class):
    self._plain_conv_op = conv_class

  def _node_or_conv(self, filters: int, kernel_size: Any = None,
                    **kwargs) -> Any:
    if tuple(np.broadcast_to(kernel_size, 2)) != _NODE_KERNEL:
      return self._plain_conv_op(filters=filters, kernel_size=kernel_size,
                                 **kwargs)
    config = self._config_dict

    def block(use_projection):
      return nn_blocks.BottleneckBlock(
          filters=filters, strides=1, use_projection=use_projection,
          kernel_initializer=config['kernel_initializer'],
          kernel_regularizer=config['kernel_regularizer'],
          bias_regularizer=config['bias_regularizer'],
          activation=config['activation'], use_sync_bn=config['use_sync_bn'],
          norm_momentum=config['norm_momentum'],
          norm_epsilon=config['norm_epsilon'],
          stochastic_depth_drop_rate=self._drop_connect_rate or None)

    def apply(inputs):
      inputs = block(inputs.shape[-1] != 4 * filters)(inputs)
      for _ in range(self._block_repeats - 1):
        inputs = block(False)(inputs)
      return inputs
    return apply

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(**config)


@factory.register_decoder_builder('bottleneck_nasfpn')
def build_bottleneck_nasfpn_decoder(
    input_specs, model_config: hyperparams.Config,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer] = None
) -> tf_keras.Model:
  """Builds BottleneckNASFPN from `model_config.decoder.bottleneck_nasfpn`."""
  config = model_config.decoder.bottleneck_nasfpn
  norm_activation = model_config.norm_activation
  return BottleneckNASFPN(
      input_specs=input_specs,
      min_level=model_config.min_level,
      max_level=model_config.max_level,
      num_filters=config.num_filters,
      num_repeats=config.num_repeats,
      block_repeats=config.block_repeats,
      use_sum_for_combination=config.use_sum_for_combination,
      drop_connect_rate=config.drop_connect_rate,
      activation=config.activation or norm_activation.activation,
      use_sync_bn=norm_activation.use_sync_bn,
      norm_momentum=norm_activation.norm_momentum,
      norm_epsilon=norm_activation.norm_epsilon,
      kernel_regularizer=l2_regularizer)
