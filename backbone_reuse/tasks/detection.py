"""Detection tasks that build, freeze and initialise the backbone by strategy.

Model Garden's tasks do everything else (inputs, losses, train/validation
steps, COCO evaluation). What changes here:
  * `build_model` builds the backbone through `modeling.strategy` (the one
    place deciding what trains) and writes MODEL_DIR/parameters.json;
  * `initialize` restores the backbone from a classification checkpoint and
    fails listing every variable it could not restore.
"""
from official.core import task_factory
from official.vision.modeling import factory
from official.vision.tasks import maskrcnn
from official.vision.tasks import retinanet
import tf_keras

from backbone_reuse.analysis import parameters
from backbone_reuse.configs import detection as detection_config
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.modeling import strategy


class _BackboneReuseTask:
  """Strategy-driven `build_model` and `initialize` for a detection task."""

  def __init__(self, params, logging_dir=None, name=None):
    params.validate()  # Refuse bad strategy settings before building.
    super().__init__(params, logging_dir=logging_dir, name=name)

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
                                       config.adapters)
    model = self._build_detector(input_specs, l2_regularizer, backbone)
    parameters.log_and_write(model, self.logging_dir)
    return model

  def initialize(self, model: tf_keras.Model):
    if self.task_config.init_checkpoint:
      backbone_checkpoint.restore_backbone(model.backbone,
                                           self.task_config.init_checkpoint)


@task_factory.register_task_cls(detection_config.MaskRCNNTask)
class MaskRCNNTask(_BackboneReuseTask, maskrcnn.MaskRCNNTask):
  """Faster / Mask / Cascade R-CNN with a backbone reuse strategy."""

  def _build_detector(self, input_specs, l2_regularizer, backbone):
    model = factory.build_maskrcnn(input_specs, self.task_config.model,
                                   l2_regularizer, backbone=backbone)
    # A symbolic call creates every variable, as Model Garden's task does.
    images = tf_keras.Input(self.task_config.model.input_size)
    image_shape = tf_keras.layers.Input([2])
    model(images, image_shape=image_shape, training=False)
    return model


@task_factory.register_task_cls(detection_config.RetinaNetTask)
class RetinaNetTask(_BackboneReuseTask, retinanet.RetinaNetTask):
  """RetinaNet with a backbone reuse strategy."""

  def _build_detector(self, input_specs, l2_regularizer, backbone):
    model = factory.build_retinanet(input_specs, self.task_config.model,
                                    l2_regularizer, backbone=backbone)
    model(tf_keras.Input(self.task_config.model.input_size), training=True)
    return model
