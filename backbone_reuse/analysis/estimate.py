"""What training a config will cost, before it runs and without its data.

For a resolved experiment config (a paper row, a Shapes cell, your own):
  * parameters: total and trained (`analysis/parameters.py` on the built
    model, so a frozen backbone counts as not trained);
  * training FLOPs per image: TF's registered FLOP statistics over one traced
    train step at one image per replica (`analysis/resources.py`: forward,
    the backward pass of what trains, the optimizer update); per step = per
    image x global batch; total = per step x trainer.train_steps;
  * memory per replica, estimated from the same graph (the method, in
    `memory_bytes`): weights, gradients and optimizer slots of what trains,
    and the activations the backward pass reads, x images per replica;
  * accelerator hours: total FLOPs at a sustained rate the caller gives
    (`DEFAULT_TFLOPS` per accelerator unless told).

Nothing is read but the config: the train step is traced on one synthetic
image written to a temporary folder at the model's input size, with the
input features that change no FLOP (repeat-factor sampling, Copy-Paste,
TFDS, a label-map decoder, class-balanced weights) switched off. Nothing
runs but the trace; one trace of a 1024-pixel NAS-FPN row took about two
minutes of CPU (beside other work) and several GiB of host memory, so
`per_image` can trace each config in a process of its own.
"""
import contextlib
import importlib
import json
import multiprocessing
import os
import tempfile
from typing import Dict, Iterable, List, Optional

from official.core import task_factory
from official.modeling import performance
from official.vision.dataloaders import tfexample_utils
import tensorflow as tf
import tf_keras

from backbone_reuse.analysis import parameters
from backbone_reuse.analysis import resources
from backbone_reuse.configs import class_balanced

# A sustained training rate per accelerator, in TFLOP/s: about 40 % of a TPU
# v3 chip's bfloat16 peak (123). Pass the figure your hardware sustains.
DEFAULT_TFLOPS = 50.0
# Accelerators the memory per replica is shown for (a TPU v3-8 host: 8 cores).
DEFAULT_REPLICAS = 8
MEMORY_PARTS = ('weights', 'gradients', 'optimizer', 'activations')
_WEIGHT_OPS = ('ReadVariableOp', 'VarHandleOp', 'Const', 'Placeholder')


def _synthetic_tfrecord(directory: str, height: int, width: int) -> str:
  """One Model Garden test example (boxes and masks) at the input size."""
  path = os.path.join(directory, 'synthetic.tfrecord')
  example = tfexample_utils.create_detection_test_example(
      image_height=height, image_width=width, image_channel=3,
      num_instances=4)
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(example.SerializeToString())
  return path


def _on_synthetic_input(params, path: str):
  """`params` training one image per step from `path`; every input option
  that would read another file (or changes no FLOP) switched off."""
  params = params.replace()  # A copy.
  train_data = params.task.train_data
  train_data.input_path = path
  train_data.tfds_name = ''
  train_data.global_batch_size = 1
  train_data.shuffle_buffer_size = 1
  if hasattr(train_data, 'decoder'):
    train_data.decoder.type = 'simple_decoder'
  if hasattr(train_data, 'repeat_factor_sampling'):
    train_data.repeat_factor_sampling.threshold = 0.0
  copy_paste = getattr(getattr(train_data, 'parser', None), 'copy_paste',
                       None)
  if copy_paste is not None:
    copy_paste.enabled = False
  balanced = getattr(params.task, 'class_balanced_loss', None)
  if balanced is not None:
    balanced.type = class_balanced.NONE
  return params


def _bytes(tensor: tf.Tensor) -> Optional[int]:
  if not tensor.shape.is_fully_defined():
    return None
  return tensor.shape.num_elements() * tensor.dtype.size


def saved_activation_bytes(graph) -> Dict[str, int]:
  """Bytes of the forward tensors the backward pass reads, per traced batch.

  A forward op's output that an executed gradient op consumes must stay in
  memory from the forward pass to the backward one; weights (variable reads,
  constants) are counted with the parameters instead. Tensors of unknown
  shape are counted in 'unknown': in the detectors here only FusedBatchNorm's
  reserve spaces (per-channel statistics; training pads every image and
  label to a fixed size).
  """
  executed = resources.executed_ops(graph)
  names = {op.name for op in executed}
  saved, unknown = 0, 0
  for op in executed:
    if resources.is_gradient_op(op) or op.type in _WEIGHT_OPS:
      continue
    for tensor in op.outputs:
      if not any(resources.is_gradient_op(c) and c.name in names
                 for c in tensor.consumers()):
        continue
      size = _bytes(tensor)
      if size is None:
        unknown += 1
      else:
        saved += size
  return {'bytes': saved, 'unknown': unknown}


def _variables_bytes(variables: Iterable[tf.Variable]) -> int:
  return sum(v.shape.num_elements() * v.dtype.size for v in variables)


def memory_bytes(model, optimizer, activations_per_image: int,
                 images_per_replica: int) -> Dict[str, int]:
  """Training memory of one replica, estimated.

  weights: every model variable (trained or not, moving statistics too);
  gradients: one per trained variable, in its dtype; optimizer: the slot
  variables the optimizer created for the trained ones (momentum: one per
  variable); activations: `saved_activation_bytes` of one image x images per
  replica. Left out: the input batch, transient buffers of single ops and
  what a compiler (XLA) fuses or rematerialises -- so a lower estimate of
  the peak, good for comparing strategies of one detector.
  """
  slots = [v for v in optimizer.variables()
           if v.shape.num_elements() and v.dtype.is_floating]
  parts = {
      'weights': _variables_bytes(model.variables),
      'gradients': _variables_bytes(model.trainable_variables),
      'optimizer': _variables_bytes(slots),
      'activations': activations_per_image * images_per_replica,
  }
  parts['total'] = sum(parts[name] for name in MEMORY_PARTS)
  return parts


@contextlib.contextmanager
def _precision_policy(params):
  """The config's Keras precision policy, set for the trace and restored."""
  previous = tf_keras.mixed_precision.global_policy()
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(
        params.runtime.mixed_precision_dtype)
  try:
    yield
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


def _trace_key(params) -> str:
  """What a per-image trace depends on: the task but its data and files,
  the precision and the optimizer."""
  task = params.task.as_dict()
  for name in ('train_data', 'validation_data', 'init_checkpoint',
               'annotation_file', 'class_balanced_loss'):
    task.pop(name, None)
  return json.dumps([task, params.runtime.mixed_precision_dtype,
                     params.trainer.optimizer_config.optimizer.type],
                    sort_keys=True, default=str)


def _traced_in_child(params, registry: str) -> Dict:
  importlib.import_module(registry)  # Registers the tasks in this process.
  return _trace(params)


def per_image(params, cache: Optional[Dict[str, Dict]] = None,
              registry: Optional[str] = None) -> Dict:
  """The traced costs of one image: parameters, FLOPs, memory parts.

  `cache` (a dict the caller keeps) skips the trace of a config whose
  model, strategy, precision and optimizer were traced before. `registry`
  (a module that registers the tasks, e.g. 'backbone_reuse.registry_imports'):
  trace in a fresh (spawned) process that imports it and ends with the
  trace, so that tracing many configs does not add up their graphs' memory
  in the caller's process; None: trace here.
  """
  key = _trace_key(params)
  if cache is not None and key in cache:
    return cache[key]
  if registry is None:
    costs = _trace(params)
  else:
    with multiprocessing.get_context('spawn').Pool(1) as pool:
      costs = pool.apply(_traced_in_child, (params, registry))
  if cache is not None:
    cache[key] = costs
  return costs


def _trace(params) -> Dict:
  height, width = params.task.model.input_size[:2]
  with tempfile.TemporaryDirectory() as directory, _precision_policy(params):
    traced = _on_synthetic_input(
        params, _synthetic_tfrecord(directory, height, width))
    task = task_factory.get_task(traced.task)
    model = task.build_model()
    dataset = task.build_inputs(traced.task.train_data)
    specs = tf.nest.map_structure(
        lambda s: tf.TensorSpec(s.shape, s.dtype), dataset.element_spec)
    graph, optimizer = resources.trace_train_step(task, model, traced, specs)
    counts = parameters.count_parameters(model)
    activations = saved_activation_bytes(graph)
    costs = {
        'parameters': {'total': counts['total_params'],
                       'trained': counts['trainable_params']},
        'flops': resources.graph_flops(graph),
        'memory_bytes': memory_bytes(model, optimizer, activations['bytes'],
                                     images_per_replica=1),
        'unknown_activation_tensors': activations['unknown'],
    }
  tf_keras.backend.clear_session()
  return costs


def estimate(params, tflops: float = DEFAULT_TFLOPS,
             replicas: int = DEFAULT_REPLICAS,
             cache: Optional[Dict[str, Dict]] = None,
             registry: Optional[str] = None) -> Dict:
  """The cost of training `params` (a resolved ExperimentConfig).

  Args:
    params: the experiment config; its data is not read.
    tflops: sustained training rate of one accelerator, TFLOP/s.
    replicas: accelerators the global batch is split over (memory per
      replica is for global batch / replicas images).
    cache, registry: as `per_image`'s.

  Returns:
    A JSON-ready dict (see the module docstring); `describe` prints it.

  Raises:
    ValueError: a rate that is not positive, or replicas that do not divide
      the global batch.
  """
  if not tflops > 0:
    raise ValueError(f'--tflops={tflops}; accepted: a positive rate (the '
                     'TFLOP/s one accelerator sustains).')
  global_batch = params.task.train_data.global_batch_size
  if replicas < 1 or global_batch % replicas:
    raise ValueError(
        f'--replicas={replicas} does not divide task.train_data.'
        f'global_batch_size={global_batch}; accepted: a divisor of it.')
  image = per_image(params, cache, registry)
  flops = image['flops']
  memory = dict(image['memory_bytes'])
  memory['activations'] *= global_batch // replicas
  memory['total'] = sum(memory[name] for name in MEMORY_PARTS)
  steps = params.trainer.train_steps
  total = flops['total'] * global_batch * steps
  return {
      'strategy': params.task.backbone_strategy,
      'parameters': image['parameters'],
      'flops_per_image': flops,
      'flops_per_step': flops['total'] * global_batch,
      'train_steps': steps,
      'global_batch_size': global_batch,
      'total_flops': total,
      'replicas': replicas,
      'memory_per_replica_bytes': memory,
      'unknown_activation_tensors': image['unknown_activation_tensors'],
      'tflops': tflops,
      'accelerator_hours': total / (tflops * 1e12) / 3600.0,
  }


def _si(value: float, unit: str = '') -> str:
  for scale, prefix in ((1e18, 'E'), (1e15, 'P'), (1e12, 'T'), (1e9, 'G'),
                        (1e6, 'M'), (1e3, 'k')):
    if abs(value) >= scale:
      return f'{value / scale:.3g} {prefix}{unit}'
  return f'{value:.3g} {unit}'.strip()


def gib(value: float) -> str:
  return f'{value / 2.0**30:.2f} GiB'


def describe(label: str, cost: Dict) -> List[str]:
  """Lines a person reads for one estimate."""
  memory = cost['memory_per_replica_bytes']
  parts = ', '.join(f'{name} {gib(memory[name])}' for name in MEMORY_PARTS)
  per_replica = cost['global_batch_size'] // cost['replicas']
  return [
      f'{label} ({cost["strategy"]}):',
      f'  parameters: {_si(cost["parameters"]["total"])} total, '
      f'{_si(cost["parameters"]["trained"])} trained',
      f'  training FLOPs: {_si(cost["flops_per_image"]["total"])} per image '
      f'(forward {_si(cost["flops_per_image"]["forward"])}, backward '
      f'{_si(cost["flops_per_image"]["backward"])}); '
      f'{_si(cost["flops_per_step"])} per step of '
      f'{cost["global_batch_size"]}; x {cost["train_steps"]} steps = '
      f'{_si(cost["total_flops"])}',
      f'  memory per replica ({per_replica} images, {cost["replicas"]} '
      f'replicas): {gib(memory["total"])} ({parts}; estimated, see '
      'backbone_reuse/analysis/estimate.py)',
      f'  accelerator hours at {cost["tflops"]:g} TFLOP/s sustained: '
      f'{cost["accelerator_hours"]:.1f}',
  ]


TABLE_HEADER = ('| entry | strategy | params M (trained) | GFLOPs / image | '
                'total EFLOPs | memory / replica GiB | accel. hours |\n'
                '|---|---|---|---|---|---|---|')


def table_row(label: str, cost: Dict) -> str:
  return (f'| {label} | {cost["strategy"]} | '
          f'{cost["parameters"]["total"] / 1e6:.1f} '
          f'({cost["parameters"]["trained"] / 1e6:.1f}) | '
          f'{cost["flops_per_image"]["total"] / 1e9:.0f} | '
          f'{cost["total_flops"] / 1e18:.2f} | '
          f'{cost["memory_per_replica_bytes"]["total"] / 2.0**30:.2f} | '
          f'{cost["accelerator_hours"]:.0f} |')

