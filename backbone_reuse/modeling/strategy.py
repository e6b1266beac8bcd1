"""The one place that decides which backbone variables train.

(The strategy names and the config checks are in configs/strategies.py.)

`task.backbone_strategy` is one of:
  scratch   random initialisation, the backbone trains (no checkpoint allowed);
  finetune  backbone restored from a classification checkpoint, then trains;
  freeze    backbone restored from a classification checkpoint and kept fixed:
            its variables are not trainable (no gradients, no optimizer slots),
            it carries no weight-decay regulariser (so no L2 term reaches the
            loss), and its BatchNorms run in inference mode (Keras 2 runs a
            non-trainable BatchNormalization with training=False), so moving
            statistics never change.
  adapters  as freeze, plus residual adapters (task.adapters; see
            modeling/adapters.py) inside the backbone that train, with their
            own weight decay.
  partial   restored like finetune; the stem and the first
            `task.frozen_stages` = k block groups are kept fixed exactly as
            with freeze (not trainable, no slots, no L2 term, BatchNorms in
            inference mode), the later groups train as with finetune
            (mmdetection's `frozen_stages`, detectron2's FREEZE_AT; k from 0,
            the stem only, to the backbone's number of groups, everything).
            ResNet (4 block groups, levels 2-5) and EfficientNet (its 7
            block groups) backbones; a plain ViT (type 'plain_vit'): the
            patch and position embeddings and the first k transformer
            blocks (modeling/plain_vit.py).
Detector components (decoder, RPN, heads and their BatchNorms) train, except
in stage 2 of the LVIS recipe (`task.train_only_box_classifier`, R-CNN
tasks): the whole detector is restored from a stage-1 detection checkpoint
(`init_checkpoint_modules: all`) and only the final classification layer of
each box head trains; every other layer, BatchNorms included, is frozen.
"""
from typing import Optional

from official.vision.modeling import backbones
import tf_keras

from backbone_reuse.configs import strategies
from backbone_reuse.modeling import adapters
from backbone_reuse.modeling import freezing


def build_backbone(
    input_specs: tf_keras.layers.InputSpec,
    model_config,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer],
    strategy: str,
    adapters_config=None,
    frozen_stages: int = strategies.FROZEN_STAGES_UNSET,
) -> tf_keras.Model:
  """Builds the detector's backbone as the strategy requires.

  Args:
    input_specs: the image input spec, shape [batch, height, width, 3].
    model_config: a detector model config (`backbone`, `norm_activation`,
      `backbone_activation`: if set, the backbone's activation).
    l2_regularizer: the task's weight-decay regulariser; dropped for a frozen
      backbone so that its weights add nothing to the loss.
    strategy: one of configs/strategies.STRATEGIES.
    adapters_config: task.adapters (used by the 'adapters' strategy).
    frozen_stages: task.frozen_stages (used by the 'partial' strategy).

  Returns:
    The backbone; non-trainable when the strategy freezes it, except for
    its adapters.
  """
  frozen = strategies.is_frozen(strategy)
  partial = strategy == strategies.PARTIAL
  norm_activation = model_config.norm_activation
  if model_config.backbone_activation:
    norm_activation = norm_activation.replace(
        activation=model_config.backbone_activation)
  backbone = backbones.factory.build_backbone(
      input_specs=input_specs,
      backbone_config=model_config.backbone,
      norm_activation_config=norm_activation,
      l2_regularizer=None if frozen or partial else l2_regularizer)
  if partial:
    freezing.freeze_stages(backbone, frozen_stages, l2_regularizer)
    return backbone
  if strategy == strategies.ADAPTERS:
    norm = model_config.norm_activation
    decay = adapters_config.l2_weight_decay
    options = adapters.AdapterOptions(
        kind=adapters_config.type, reduction=adapters_config.reduction,
        zero_init=adapters_config.zero_init,
        # Halved to match tf.nn.l2_loss, as for the detector's regulariser.
        kernel_regularizer=(tf_keras.regularizers.l2(decay / 2.0)
                            if decay else None),
        norm_momentum=norm.norm_momentum, norm_epsilon=norm.norm_epsilon,
        gradient_multiplier=adapters_config.learning_rate_multiplier)
    backbone = adapters.build_adapted(backbone, input_specs, options,
                                      adapters_config.levels)
    adapters.freeze_all_but_adapters(backbone)
    return backbone
  backbone.trainable = not frozen
  return backbone


def freeze_all_but_box_classifiers(model: tf_keras.Model) -> None:
  """Stage 2: only each box head's final classification layer trains.

  Args:
    model: a built Model Garden MaskRCNNModel (one head, or a cascade).
  """
  classifiers = {id(head._classifier) for head in model.detection_head}  # pylint: disable=protected-access
  freezing.freeze_all_except(model, lambda layer: id(layer) in classifiers)
