"""Mixed precision for Model Garden detectors on CPUs and GPUs.

`tf.image.combined_non_max_suppression` (Model Garden's batched NMS, which
the Shapes detectors use because it is much faster on a CPU) has float32
kernels only, so a detector built under a `mixed_bfloat16` policy fails at
its first call. `keep_nms_in_float32` swaps the model's ROI generator and
detection generator for subclasses that cast their inputs to float32 and
compute in float32 (they have no variables, so checkpoints are unchanged);
the rest of the model keeps the mixed policy.
"""
from typing import Any

from official.vision.modeling import maskrcnn_model
from official.vision.modeling import retinanet_model
from official.vision.modeling.layers import detection_generator
from official.vision.modeling.layers import roi_generator
import tensorflow as tf
import tf_keras


def _float32(tree: Any) -> Any:
  """Every floating tensor of a nested structure, cast to float32."""
  def cast(value):
    if isinstance(value, (tf.Tensor, tf.Variable)) and value.dtype.is_floating:
      return tf.cast(value, tf.float32)
    return value
  return tf.nest.map_structure(cast, tree)


class Float32ROIGenerator(roi_generator.MultilevelROIGenerator):
  """Model Garden's ROI generator, computing in float32."""

  def __call__(self, *args, **kwargs):
    return super().__call__(*_float32(args), **_float32(kwargs))


class Float32DetectionGenerator(detection_generator.DetectionGenerator):
  """Model Garden's R-CNN detection generator, computing in float32."""

  def __call__(self, *args, **kwargs):
    return super().__call__(*_float32(args), **_float32(kwargs))


class Float32MultilevelDetectionGenerator(
    detection_generator.MultilevelDetectionGenerator):
  """Model Garden's RetinaNet detection generator, computing in float32."""

  def __call__(self, *args, **kwargs):
    return super().__call__(*_float32(args), **_float32(kwargs))


_FLOAT32 = {
    roi_generator.MultilevelROIGenerator: Float32ROIGenerator,
    detection_generator.DetectionGenerator: Float32DetectionGenerator,
    detection_generator.MultilevelDetectionGenerator:
        Float32MultilevelDetectionGenerator,
}


# Where Model Garden's models keep their generators. RetinaNetModel exposes
# its generator as a read-only property over a private attribute: the one
# reach into Model Garden internals here (tests/test_precision.py fails if
# it moves).
_GENERATORS = {
    maskrcnn_model.MaskRCNNModel: ('roi_generator', 'detection_generator'),
    retinanet_model.RetinaNetModel: ('_detection_generator',),
}


def _batched_nms(layer: tf_keras.layers.Layer) -> bool:
  config = layer.get_config()
  return bool(config.get('use_batched_nms')
              or config.get('nms_version') == 'batched')


def is_mixed() -> bool:
  """Whether the global Keras policy computes in less than float32."""
  return tf_keras.mixed_precision.global_policy().compute_dtype != 'float32'


def keep_nms_in_float32(model: tf_keras.Model) -> None:
  """Replaces `model`'s proposal and detection generators that use batched
  NMS by float32 ones when the global policy is mixed (a no-op under
  float32, and for the other NMS versions, which Model Garden's TPU
  configs use in bfloat16). Call before the model's first call.

  Raises:
    TypeError: for a model class whose generators are not known here.
  """
  if not is_mixed():
    return
  attributes = next((names for cls, names in _GENERATORS.items()
                     if isinstance(model, cls)), None)
  if attributes is None:
    raise TypeError(f'{type(model).__name__}: no known NMS layers; known: '
                    f'{", ".join(c.__name__ for c in _GENERATORS)}')
  for attribute in attributes:
    layer = getattr(model, attribute)
    replacement = _FLOAT32.get(type(layer))
    if replacement is None or not _batched_nms(layer):
      continue  # Model Garden's other NMS versions handle bfloat16.
    setattr(model, attribute,
            replacement(**layer.get_config(), dtype='float32'))
