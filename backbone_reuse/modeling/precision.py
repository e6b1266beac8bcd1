"""Mixed precision for Model Garden detectors on CPUs and GPUs.

`tf.image.combined_non_max_suppression` (Model Garden's batched NMS, which
the Shapes detectors use because it is much faster on a CPU) has float32
kernels only, so a detector built under a `mixed_bfloat16` policy fails at
its first call. `keep_nms_in_float32` swaps the model's ROI generator and
detection generator for subclasses that cast their inputs to float32 and
compute in float32 (they have no variables, so checkpoints are unchanged);
the rest of the model keeps the mixed policy.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


# -- choosing the precision ------------------------------------------------------
PRECISIONS = ('auto', 'float32', 'bfloat16')
# CPU flags (Linux /proc/cpuinfo) of the instructions oneDNN runs bfloat16
# matrix products with; elsewhere TensorFlow emulates bfloat16 (slowly).
CPU_BF16_FLAGS = ('amx_bf16', 'avx512_bf16')


def cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> Tuple[str, ...]:
  """The CPU's feature flags (empty where /proc/cpuinfo is not there)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith('flags'):
          return tuple(sorted(line.split(':', 1)[1].split()))
  except OSError:
    pass
  return ()


def cpu_bf16_flags(flags: Optional[Sequence[str]] = None) -> List[str]:
  """Which of CPU_BF16_FLAGS the CPU reports (flags: default this
  machine's)."""
  flags = cpu_flags() if flags is None else flags
  return [f for f in CPU_BF16_FLAGS if f in flags]


def describe(dtype: str, reason: str) -> Dict:
  """What a run's summary says of its precision."""
  return {'dtype': dtype, 'reason': reason,
          'cpu_bf16_flags': cpu_bf16_flags()}


def _gpus_with_bf16() -> List[str]:
  found = []
  for gpu in tf.config.list_physical_devices('GPU'):
    capability = tf.config.experimental.get_device_details(gpu).get(
        'compute_capability')
    if capability and tuple(capability) >= (8, 0):  # Ampere and later.
      found.append(gpu.name)
  return found


def choose(precision: str, flags: Optional[Sequence[str]] = None,
           gpus: Optional[Sequence[str]] = None) -> Tuple[str, str]:
  """The precision a run trains in, and why, in words.

  Args:
    precision: 'auto', 'float32' or 'bfloat16'. 'auto' is bfloat16 where
      the CPU reports AMX-BF16 or AVX512-BF16 or a GPU supports bfloat16,
      float32 elsewhere.
    flags: the CPU flags (default: this machine's).
    gpus: GPUs with bfloat16 (default: this machine's).

  Returns:
    ('float32' | 'bfloat16', the reason).

  Raises:
    ValueError: an unknown precision.
  """
  if precision not in PRECISIONS:
    raise ValueError(f'--precision={precision!r}; accepted: '
                     f'{", ".join(PRECISIONS)}')
  found = cpu_bf16_flags(flags)
  cpu = (f'the CPU reports {", ".join(found)}' if found
         else f'the CPU reports none of {", ".join(CPU_BF16_FLAGS)}')
  if precision != 'auto':
    return precision, f'asked for ({cpu})'
  gpus = _gpus_with_bf16() if gpus is None else gpus
  if gpus:
    return 'bfloat16', f'auto: {", ".join(gpus)} support bfloat16'
  if found:
    return 'bfloat16', f'auto: {cpu}'
  return 'float32', f'auto: {cpu}'
