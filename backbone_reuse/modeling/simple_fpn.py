"""The simple feature pyramid of ViTDet (Li et al. 2022), registered.

A plain ViT gives one feature map (stride 16 for patch 16, level 4 in Model
Garden's numbering, `output_2d_feature_maps`). ViTDet builds the pyramid
from it alone, with no top-down path: each level finer than the input by k
octaves is k 2x2 transposed convolutions (normalisation and GELU between
them, channels halved by each), the input's own level is the map as it is,
and each coarser level is one more 2x2 max-pool of the previous one. Every
level then gets a 1x1 and a 3x3 convolution, each followed by the
normalisation. Levels are relative to whatever single level the backbone
gives, so a patch-8 ViT (level 3) serves min_level 2 with one transposed
convolution. One difference from detectron2's ViTDet: its P6 is P5's output
subsampled (a stride-2 1x1 max-pool, no convolution); here every level,
P6 included, gets its own 1x1 and 3x3 convolutions.

Registered as decoder type 'simple_fpn' (config: SimpleFPN in
configs/detection.py).
"""
from typing import Any, Dict, Mapping, Optional

from official.modeling import hyperparams
from official.vision.modeling.decoders import factory
import tensorflow as tf
import tf_keras

from backbone_reuse.configs import detection as detection_config

NORMS = detection_config.SIMPLE_FPN_NORMS


def _norm(kind: str, name: str):
  if kind == 'layer_norm':  # Over channels at each position (LayerNorm2d).
    return tf_keras.layers.LayerNormalization(axis=-1, epsilon=1e-6,
                                              name=name)
  if kind == 'batch_norm':
    return tf_keras.layers.BatchNormalization(axis=-1, name=name)
  return tf_keras.layers.Activation('linear', name=name)


class SimpleFPN(tf_keras.Model):
  """ViTDet's simple feature pyramid over one backbone level."""

  def __init__(self, input_specs: Mapping[str, tf.TensorShape],
               min_level: int = 3, max_level: int = 7,
               num_filters: int = 256, norm: str = 'layer_norm',
               kernel_regularizer: Optional[Any] = None, **kwargs):
    """Builds the pyramid.

    Args:
      input_specs: {level: shape} of the backbone's outputs; exactly one.
      min_level: the finest output level.
      max_level: the coarsest output level.
      num_filters: channels of every output level.
      norm: 'layer_norm' (ViTDet's), 'batch_norm' or 'none'.
      kernel_regularizer: for every convolution's kernel.
      **kwargs: tf_keras.Model's.

    Raises:
      ValueError: more or fewer than one input level, a norm not in NORMS,
        or min_level > max_level.
    """
    if len(input_specs) != 1:
      raise ValueError(
          f'simple_fpn builds from one backbone level; the backbone gives '
          f'levels {sorted(input_specs)} (a plain ViT with '
          'output_2d_feature_maps gives one).')
    if norm not in NORMS:
      raise ValueError(f'simple_fpn norm={norm!r}; accepted: '
                       f'{", ".join(NORMS)}.')
    if min_level > max_level:
      raise ValueError(f'simple_fpn min_level={min_level} > max_level='
                       f'{max_level}.')
    self._config_dict = dict(
        input_specs=input_specs, min_level=min_level, max_level=max_level,
        num_filters=num_filters, norm=norm,
        kernel_regularizer=kernel_regularizer)
    ((key, spec),) = input_specs.items()
    source_level = int(key)
    inputs = {key: tf_keras.Input(shape=spec[1:])}
    source = inputs[key]
    channels = spec[-1]
    conv_args = dict(kernel_regularizer=kernel_regularizer)
    feats: Dict[str, tf.Tensor] = {}
    coarser = source
    for level in range(min_level, max_level + 1):
      octaves = source_level - level
      x = source
      if octaves > 0:
        for step in range(octaves):
          if step:
            x = _norm(norm, f'up_{level}_norm_{step}')(x)
            x = tf_keras.layers.Activation('gelu')(x)
          x = tf_keras.layers.Conv2DTranspose(
              max(channels // 2 ** (step + 1), 1), 2, strides=2,
              name=f'up_{level}_{step}', **conv_args)(x)
      elif octaves < 0:
        # Each coarser level pools the one before it (ViTDet's P6 pools P5).
        x = tf_keras.layers.MaxPool2D(2, strides=2, padding='same',
                                      name=f'pool_{level}')(coarser)
        coarser = x
      x = tf_keras.layers.Conv2D(num_filters, 1, use_bias=norm == 'none',
                                 name=f'lateral_{level}', **conv_args)(x)
      x = _norm(norm, f'lateral_{level}_norm')(x)
      x = tf_keras.layers.Conv2D(num_filters, 3, padding='same',
                                 use_bias=norm == 'none',
                                 name=f'output_{level}', **conv_args)(x)
      feats[str(level)] = _norm(norm, f'output_{level}_norm')(x)
    self._output_specs = {level: feats[level].get_shape() for level in feats}
    super().__init__(inputs=inputs, outputs=feats, **kwargs)

  def get_config(self) -> Mapping[str, Any]:
    return self._config_dict

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(**config)

  @property
  def output_specs(self) -> Mapping[str, tf.TensorShape]:
    """{level: TensorShape} of the pyramid."""
    return self._output_specs


@factory.register_decoder_builder('simple_fpn')
def build_simple_fpn_decoder(
    input_specs, model_config: hyperparams.Config,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer] = None
) -> tf_keras.Model:
  """Builds SimpleFPN from `model_config.decoder.simple_fpn`."""
  config = model_config.decoder.simple_fpn
  return SimpleFPN(input_specs=input_specs,
                   min_level=model_config.min_level,
                   max_level=model_config.max_level,
                   num_filters=config.num_filters, norm=config.norm,
                   kernel_regularizer=l2_regularizer)
