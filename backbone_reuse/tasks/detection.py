"""Detection tasks that build, freeze and initialise the backbone by strategy.

Model Garden's tasks do everything else (inputs, losses, train/validation
steps, COCO evaluation). What changes here:
  * `build_model` builds the backbone through `modeling.strategy` (the one
    place deciding what trains); building a task or a model reads and
    writes no file (the training run writes parameters.json);
  * `initialize` restores the backbone from a classification checkpoint and
    fails listing every variable it could not restore (or, with
    init_checkpoint_modules 'all', a whole detector by the one rule preflight
    and export apply too: backbone_checkpoint.restore_detector);
  * R-CNN: repeat-factor sampling, Copy-Paste and TFDS `lvis` input
    (dataloaders/); R-CNN and RetinaNet: TFDS `coco` labels as COCO ids; a
    class-balanced loss is Model Garden's per-class `losses.class_weights`
    (filled in when the config is resolved); stage 2 trains only the box
    classifiers;
  * a task with `class_category_ids` (a dataset whose ids are not 1..K)
    decodes labels as class indices and is scored in category ids
    (evaluation/category_ids.py);
  * LVIS: validation runs the LVIS API (evaluation/lvis_evaluator.py).
"""
import contextlib

from official.core import task_factory
from official.vision.modeling import factory
from official.vision.tasks import maskrcnn
from official.vision.tasks import retinanet
import tf_keras

from backbone_reuse.configs import detection as detection_config
from backbone_reuse.configs import strategies
from backbone_reuse.dataloaders import decoders
from backbone_reuse.dataloaders import maskrcnn_input
from backbone_reuse.evaluation import category_ids
from backbone_reuse.evaluation import lvis_evaluator
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.configs import class_balanced
from backbone_reuse.modeling import precision
from backbone_reuse.modeling import strategy


class _BackboneReuseTask:
  """Strategy-driven `build_model` and `initialize` for a detection task."""

  def __init__(self, params, logging_dir=None, name=None):
    params.validate()  # Refuse bad strategy settings before building.
    super().__init__(self._check_resolved(params), logging_dir=logging_dir,
                     name=name)

  def _check_resolved(self, params):
    """`params`, once it is known that the values a config derives from
    data files were filled in when it was resolved (configs/resolve.py):
    building a task reads no file."""
    return params

  def _build_detector(self, input_specs, l2_regularizer, backbone):
    raise NotImplementedError

  def build_model(self) -> tf_keras.Model:
    config = self.task_config
    input_specs = tf_keras.layers.InputSpec(
        shape=[None] + config.model.input_size)
    # Halved to match tf.nn.l2_loss, as Model Garden's tasks do.
    l2_weight_decay = config.losses.l2_weight_decay
    l2_regularizer = (tf_keras.regularizers.l2(l2_weight_decay / 2.0)
                      if l2_weight_decay else None)
    backbone = strategy.build_backbone(input_specs, config.model,
                                       l2_regularizer,
                                       config.backbone_strategy,
                                       config.adapters,
                                       config.frozen_stages)
    model = self._build_detector(input_specs, l2_regularizer, backbone)
    return model

  def build_metrics(self, training: bool = True):
    metrics = super().build_metrics(training)
    ids = self.task_config.class_category_ids
    if not training and ids and getattr(self, 'coco_metric', None):
      # Scored in the dataset's category ids, as its annotation file has them.
      self.coco_metric = category_ids.CategoryIdEvaluator(self.coco_metric,
                                                          ids)
    return metrics

  def initialize(self, model: tf_keras.Model):
    if not self.task_config.init_checkpoint:
      return
    if self.task_config.init_checkpoint_modules == strategies.WHOLE_DETECTOR:
      # A detection checkpoint (stage 1's): the one restore rule for a
      # detector, as preflight and export apply it: every model variable
      # found with its shape, every checkpoint model variable used.
      backbone_checkpoint.restore_detector(
          model, self.task_config.init_checkpoint,
          flag='task.init_checkpoint')
    else:
      backbone_checkpoint.restore_backbone(model.backbone,
                                           self.task_config.init_checkpoint)


@task_factory.register_task_cls(detection_config.MaskRCNNTask)
class MaskRCNNTask(_BackboneReuseTask, maskrcnn.MaskRCNNTask):
  """Faster / Mask / Cascade R-CNN with a backbone reuse strategy."""

  def _check_resolved(self, params):
    balanced = params.class_balanced_loss
    if balanced.type != class_balanced.NONE and not balanced.resolved:
      raise ValueError(
          f'task.class_balanced_loss.type={balanced.type!r} becomes '
          'task.losses.class_weights when the config is resolved '
          '(backbone_reuse.configs.resolve: experiment_config, or '
          'fill_derived on a config built otherwise); this one was not, '
          'and building the task reads no annotation file.')
    return params

  def build_inputs(self, params, input_context=None, dataset_fn=None):
    if maskrcnn_input.needed(  # Sampling, Copy-Paste, TFDS, a class map.
        params, self.task_config.class_category_ids):
      return maskrcnn_input.build(self.task_config, params, input_context,
                                  dataset_fn)
    return super().build_inputs(params, input_context, dataset_fn)

  def _build_detector(self, input_specs, l2_regularizer, backbone):
    model = factory.build_maskrcnn(input_specs, self.task_config.model,
                                   l2_regularizer, backbone=backbone)
    precision.keep_nms_in_float32(model)
    # A symbolic call creates every variable, as Model Garden's task does.
    images = tf_keras.Input(self.task_config.model.input_size)
    image_shape = tf_keras.layers.Input([2])
    model(images, image_shape=image_shape, training=False)
    if self.task_config.train_only_box_classifier:
      strategy.freeze_all_but_box_classifiers(model)
    return model


@task_factory.register_task_cls(detection_config.LvisMaskRCNNTask)
class LvisMaskRCNNTask(MaskRCNNTask):
  """Mask R-CNN on LVIS: validation reports the LVIS API's metrics."""

  def _build_coco_metrics(self):
    # Model Garden's validation loop feeds whatever `coco_metric` is.
    self.coco_metric = lvis_evaluator.LVISEvaluator(
        self.task_config.annotation_file,
        include_mask=self.task_config.model.include_mask,
        per_category_metrics=self.task_config.per_category_metrics)


@contextlib.contextmanager
def _model_garden_tfds_decoder(decoder):
  """Model Garden's RetinaNet task takes a TFDS source's decoder from
  `tfds_factory.get_detection_decoder` and has no argument to pass another:
  that one lookup returns `decoder` for the duration of the block."""
  lookup = retinanet.tfds_factory.get_detection_decoder
  retinanet.tfds_factory.get_detection_decoder = lambda name: decoder
  try:
    yield
  finally:
    retinanet.tfds_factory.get_detection_decoder = lookup


@contextlib.contextmanager
def _model_garden_labels_as_class_indices(class_category_ids):
  """Model Garden's RetinaNet task builds its TFRecord decoder inline and
  hands `decoder.decode` to its reader factory: for the duration of the
  block, that factory receives it with labels mapped to class indices."""
  factory_fn = retinanet.input_reader_factory.input_reader_generator

  def mapped(params, **kwargs):
    kwargs['decoder_fn'] = decoders.class_indices(kwargs['decoder_fn'],
                                                  class_category_ids)
    return factory_fn(params, **kwargs)

  if class_category_ids:
    retinanet.input_reader_factory.input_reader_generator = mapped
  try:
    yield
  finally:
    retinanet.input_reader_factory.input_reader_generator = factory_fn


@task_factory.register_task_cls(detection_config.RetinaNetTask)
class RetinaNetTask(_BackboneReuseTask, retinanet.RetinaNetTask):
  """RetinaNet with a backbone reuse strategy."""

  def build_inputs(self, params, input_context=None):
    """Model Garden's RetinaNet input; a TFDS source (coco/2017) decoded by
    dataloaders/decoders.py, so its labels are COCO's category ids as the
    COCO TFRecords and the evaluator's annotation file carry them (Model
    Garden's TFDS decoder keeps TFDS's 0-based indices)."""
    with _model_garden_labels_as_class_indices(
        self.task_config.class_category_ids):
      if not params.tfds_name:
        return super().build_inputs(params, input_context)
      with _model_garden_tfds_decoder(
          decoders.build(self.task_config.model, params)):
        return super().build_inputs(params, input_context)

  def _build_detector(self, input_specs, l2_regularizer, backbone):
    model = factory.build_retinanet(input_specs, self.task_config.model,
                                    l2_regularizer, backbone=backbone)
    precision.keep_nms_in_float32(model)
    model(tf_keras.Input(self.task_config.model.input_size), training=True)
    return model
