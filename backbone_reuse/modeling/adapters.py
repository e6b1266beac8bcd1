"""Residual adapters on a frozen ResNet or EfficientNet backbone (paper §4.5,
Table 7); what they are and how to configure them: configs/strategies/README.md.

Series (Rebuffi et al. 2017: y = z + W(BN(z)) after a frozen conv) or parallel
(2018: W beside it, on its input); W a 1x1 conv, or a low-rank pair. Where:
every 3x3 conv of a residual block (where Rebuffi et al. put them), and on an
EfficientNet the MBConv projection, its one dense conv at the residual
stream's width. Why these choices:
  * W's last conv starts at zero, so at step 0 the backbone computes exactly
    the frozen function: `freeze` and `adapters` differ only by what the
    adapters learn.
  * The adapted conv subclasses the Conv2D it replaces under the same
    attribute, so every base variable keeps its checkpoint path and a plain
    classification checkpoint restores; adapter variables sit under a new
    `_adapter` edge.
  * `gradient_multiplier` scales only the gradient reaching W's kernels
    (forward pass untouched), i.e. the adapters' SGD rate relative to the
    heads'.
"""
import dataclasses
import functools
from typing import List, Optional, Sequence

from official.vision.modeling.backbones import efficientnet
from official.vision.modeling.backbones import resnet
from official.vision.modeling.layers import nn_blocks
import tensorflow as tf
import tf_keras

from backbone_reuse.configs import strategies
from backbone_reuse.modeling import freezing

SERIES = strategies.ADAPTER_SERIES
PARALLEL = strategies.ADAPTER_PARALLEL
LEVELS = strategies.RESNET_LEVELS
# The 3x3 convs of each Model Garden block, by attribute.
_ADAPTED_CONVS = {
    nn_blocks.ResidualBlock: ('_conv1', '_conv2'),
    nn_blocks.BottleneckBlock: ('_conv2',),
    # The projection (see the module docstring, EfficientNet).
    nn_blocks.InvertedBottleneckBlock: ('_conv2',),
}


@dataclasses.dataclass(frozen=True)
class AdapterOptions:
  """How each adapter is built (see the module docstring)."""
  kind: str = SERIES
  reduction: int = 0  # 0: full-width 1x1; r > 0: C -> C/r -> C.
  zero_init: bool = True
  kernel_regularizer: Optional[tf_keras.regularizers.Regularizer] = None
  norm_momentum: float = 0.99
  norm_epsilon: float = 1e-3
  gradient_multiplier: float = 1.0


def _scale_gradient(x: tf.Tensor, multiplier: float) -> tf.Tensor:
  """x itself in the forward pass; `multiplier` times its gradient back."""

  @tf.custom_gradient
  def scaled(value):
    return tf.identity(value), lambda upstream: upstream * multiplier

  return scaled(x)


class _GradientScaledConv2D(tf_keras.layers.Conv2D):
  """A bias-free Conv2D whose kernel's gradient is scaled (see the module
  docstring, Learning rate)."""

  def __init__(self, *args, gradient_multiplier: float, **kwargs):
    super().__init__(*args, **kwargs)
    self._gradient_multiplier = gradient_multiplier

  def call(self, inputs):
    return self.convolution_op(
        inputs, _scale_gradient(self.kernel, self._gradient_multiplier))


class Adapter(tf_keras.layers.Layer):
  """W (and, in series, the BN before it): the only trained backbone part.

  Call: [batch, height, width, channels_in] -> [batch, height / strides,
  width / strides, filters]. Series: channels_in == filters, strides 1.
  """

  def __init__(self, filters: int, options: AdapterOptions, strides: int = 1,
               **kwargs):
    super().__init__(**kwargs)
    self._filters = filters
    self._options = options
    self._strides = strides

  def build(self, input_shape):
    options = self._options
    if options.kind == SERIES:
      self._norm = tf_keras.layers.BatchNormalization(
          momentum=options.norm_momentum, epsilon=options.norm_epsilon)
    last_init = 'zeros' if options.zero_init else 'he_normal'
    conv_class = tf_keras.layers.Conv2D
    if options.gradient_multiplier != 1.0:
      conv_class = functools.partial(
          _GradientScaledConv2D,
          gradient_multiplier=options.gradient_multiplier)
    convs = []
    if options.reduction:
      convs.append(conv_class(
          max(1, self._filters // options.reduction), 1,
          strides=self._strides, use_bias=False,
          kernel_initializer='he_normal',
          kernel_regularizer=options.kernel_regularizer))
    convs.append(conv_class(
        self._filters, 1, strides=1 if options.reduction else self._strides,
        use_bias=False, kernel_initializer=last_init,
        kernel_regularizer=options.kernel_regularizer))
    self._convs = convs
    super().build(input_shape)

  def call(self, inputs, training=None):
    x = inputs
    if self._options.kind == SERIES:
      x = self._norm(x, training=training)
    for conv in self._convs:
      x = conv(x)
    return x


class AdaptedConv2D(tf_keras.layers.Conv2D):
  """A (frozen) Conv2D with a residual adapter in series or in parallel.

  Same call shapes as the Conv2D it replaces: [batch, height, width,
  channels_in] -> [batch, height', width', filters].
  """

  def __init__(self, *args, adapter_options: AdapterOptions, **kwargs):
    super().__init__(*args, **kwargs)
    self._adapter_options = adapter_options

  def build(self, input_shape):
    super().build(input_shape)
    options = self._adapter_options
    # A 'valid' 3x3 conv here follows Model Garden's explicit 1-pixel
    # padding; the parallel 1x1 sees the unpadded input so outputs align.
    self._crop = (self.kernel_size[0] // 2 if self.padding == 'valid'
                  and options.kind == PARALLEL else 0)
    self._adapter = Adapter(self.filters, options,
                            strides=self.strides[0] if options.kind ==
                            PARALLEL else 1, name='adapter')

  def freeze_base(self):
    """Moves the conv's own weights out of the trainable set (the adapter
    keeps training; `trainable=False` here would stop it too)."""
    base = [self.kernel] + ([self.bias] if self.use_bias else [])
    # In place: assigning these lists would make Keras re-add every
    # tf.Variable(trainable=True) in them to the trainable set.
    self._trainable_weights[:] = [
        w for w in self._trainable_weights if all(w is not b for b in base)]
    for weight in base:
      if all(weight is not w for w in self._non_trainable_weights):
        self._non_trainable_weights.append(weight)

  def call(self, inputs, training=None):
    z = super().call(inputs)
    if self._adapter_options.kind == SERIES:
      return z + self._adapter(z, training=training)
    x = inputs
    if self._crop:
      x = x[:, self._crop:-self._crop, self._crop:-self._crop, :]
    return z + self._adapter(x, training=training)


def _adapted_block(base_cls):
  """A Model Garden block whose 3x3 convs carry adapters."""
  conv_names = _ADAPTED_CONVS[base_cls]

  class AdaptedBlock(base_cls):

    def __init__(self, *args, adapter_options: AdapterOptions, **kwargs):
      super().__init__(*args, **kwargs)
      self._adapter_options = adapter_options

    def build(self, input_shape):
      super().build(input_shape)
      for name in conv_names:
        plain = getattr(self, name)
        setattr(self, name, AdaptedConv2D(
            **plain.get_config(), adapter_options=self._adapter_options))

  AdaptedBlock.__name__ = 'Adapted' + base_cls.__name__
  return AdaptedBlock


_ADAPTED_BLOCKS = {cls: _adapted_block(cls) for cls in _ADAPTED_CONVS}


class AdaptedResNet(resnet.ResNet):
  """Model Garden's ResNet with adapters in the blocks of `levels`."""

  def __init__(self, *args, adapter_options: AdapterOptions,
               levels: Sequence[int] = LEVELS, **kwargs):
    # ResNet.__init__ builds the whole graph (calling _block_group), so the
    # adapter settings must be in place first, untracked by Keras.
    object.__setattr__(self, '_adapter_plan', (adapter_options, tuple(levels)))
    super().__init__(*args, **kwargs)

  def _block_group(self, inputs, filters, strides, block_fn,
                   block_repeats=1, stochastic_depth_drop_rate=0.0,
                   name='block_group'):
    options, levels = self._adapter_plan
    if int(name.rsplit('_l', 1)[1]) in levels:
      block_fn = functools.partial(_ADAPTED_BLOCKS[block_fn],
                                   adapter_options=options)
    return super()._block_group(inputs, filters, strides, block_fn,
                                block_repeats, stochastic_depth_drop_rate,
                                name)


def build_adapted_resnet(plain: resnet.ResNet,
                         input_specs: tf_keras.layers.InputSpec,
                         options: AdapterOptions,
                         levels: Optional[Sequence[int]] = None
                         ) -> AdaptedResNet:
  """The adapted twin of `plain` (same constructor arguments)."""
  return AdaptedResNet(input_specs=input_specs, adapter_options=options,
                       levels=tuple(levels or LEVELS), **plain.get_config())


class _EfficientNetBlocks:
  """What efficientnet.py reads as `nn_blocks` while one adapted group is
  built: Model Garden's blocks, with the MBConv block adapted."""

  def __init__(self, mbconv):
    self.InvertedBottleneckBlock = mbconv  # pylint: disable=invalid-name

  def __getattr__(self, name):
    return getattr(nn_blocks, name)


class AdaptedEfficientNet(efficientnet.EfficientNet):
  """Model Garden's EfficientNet with adapters in the MBConv blocks of the
  groups that feed `levels`."""

  def __init__(self, *args, adapter_options: AdapterOptions,
               levels: Sequence[int] = LEVELS, **kwargs):
    # As AdaptedResNet: EfficientNet.__init__ builds the graph. The list is
    # the level the next group feeds (groups count up to an output).
    object.__setattr__(self, '_adapter_plan',
                       (adapter_options, tuple(levels), [LEVELS[0]]))
    super().__init__(*args, **kwargs)

  def _block_group(self, inputs, specs, name='block_group'):
    options, levels, level = self._adapter_plan
    feeds = level[0]
    if specs.is_output:
      level[0] += 1
    if feeds not in levels:
      return super()._block_group(inputs, specs, name)
    # EfficientNet._block_group takes its block class from the module's
    # `nn_blocks`; for this group that name gives the adapted block.
    mbconv = functools.partial(
        _ADAPTED_BLOCKS[nn_blocks.InvertedBottleneckBlock],
        adapter_options=options)
    efficientnet.nn_blocks = _EfficientNetBlocks(mbconv)
    try:
      return super()._block_group(inputs, specs, name)
    finally:
      efficientnet.nn_blocks = nn_blocks


def build_adapted(plain: tf_keras.Model,
                  input_specs: tf_keras.layers.InputSpec,
                  options: AdapterOptions,
                  levels: Optional[Sequence[int]] = None) -> tf_keras.Model:
  """The adapted twin of a Model Garden ResNet or EfficientNet `plain`
  (same constructor arguments)."""
  if isinstance(plain, resnet.ResNet):
    return build_adapted_resnet(plain, input_specs, options, levels)
  if isinstance(plain, efficientnet.EfficientNet):
    return AdaptedEfficientNet(input_specs=input_specs,
                               adapter_options=options,
                               levels=tuple(levels or LEVELS),
                               **plain.get_config())
  raise ValueError(f'{type(plain).__name__} has no adapter placement; '
                   'accepted: a ResNet or an EfficientNet.')


def adapters_of(layer: tf_keras.layers.Layer) -> List[Adapter]:
  return [m for m in layer.submodules if isinstance(m, Adapter)]


def adapter_variables(layer: tf_keras.layers.Layer) -> List[tf.Variable]:
  return [w for a in adapters_of(layer) for w in a.weights]


def freeze_all_but_adapters(layer: tf_keras.layers.Layer) -> None:
  """Stops training every base weight under `layer`; adapters still train.

  Layers without adapters inside are frozen (their BatchNorms then run in
  inference mode, exactly as with `freeze`); adapted convs drop their own
  kernel from the trainable set.
  """
  freezing.freeze_all_except(layer, lambda l: isinstance(l, Adapter))
  for conv in [layer, *layer.submodules]:
    if isinstance(conv, AdaptedConv2D):
      conv.freeze_base()
