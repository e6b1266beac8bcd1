"""The one place that decides which backbone variables train.

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
            ResNet backbones (block groups = levels 2-5).
Detector components (decoder, RPN, heads and their BatchNorms) train, except
in stage 2 of the LVIS recipe (`task.train_only_box_classifier`, R-CNN
tasks): the whole detector is restored from a stage-1 detection checkpoint
(`init_checkpoint_modules: all`) and only the final classification layer of
each box head trains; every other layer, BatchNorms included, is frozen.
"""
from typing import Optional

from official.vision.modeling import backbones
import tf_keras

from backbone_reuse.modeling import adapters
from backbone_reuse.modeling import freezing

SCRATCH = 'scratch'
FINETUNE = 'finetune'
FREEZE = 'freeze'
ADAPTERS = 'adapters'
PARTIAL = 'partial'
STRATEGIES = (SCRATCH, FINETUNE, FREEZE, ADAPTERS, PARTIAL)
# task.frozen_stages when it does not apply (any strategy but partial).
FROZEN_STAGES_UNSET = -1
CHECKPOINT_MODULES = ('backbone', 'all')


def is_frozen(strategy: str) -> bool:
  """The base backbone weights stay fixed (adapters, if any, train)."""
  return strategy in (FREEZE, ADAPTERS)


def validate_task_config(task_config) -> None:
  """Refuses inconsistent strategy settings before any model is built.

  Args:
    task_config: a task config with `backbone_strategy`, `init_checkpoint`,
      `init_checkpoint_modules`, `freeze_backbone` and `model.backbone`.

  Raises:
    ValueError: one line naming the field, its value and what is accepted.
  """
  strategy = task_config.backbone_strategy
  checkpoint = task_config.init_checkpoint
  if strategy not in STRATEGIES:
    raise ValueError(
        f'task.backbone_strategy={strategy!r} is not supported; accepted: '
        f'{", ".join(STRATEGIES)}.')
  modules = task_config.init_checkpoint_modules
  # With modules 'all' the checkpoint is a trained detector (stage 2 of the
  # LVIS recipe), not a classification backbone, whatever the strategy was.
  if strategy == SCRATCH and checkpoint and modules != 'all':
    raise ValueError(
        f'task.init_checkpoint={checkpoint!r} contradicts '
        "task.backbone_strategy='scratch' (random initialisation); remove "
        "init_checkpoint or use backbone_strategy 'finetune' or 'freeze'.")
  if strategy != SCRATCH and not checkpoint:
    raise ValueError(
        f'task.backbone_strategy={strategy!r} needs task.init_checkpoint (a '
        f'classification checkpoint), got {checkpoint!r}; set it, or use '
        "backbone_strategy 'scratch'.")
  if task_config.freeze_backbone and strategy != FREEZE:
    raise ValueError(
        'task.freeze_backbone=True contradicts task.backbone_strategy='
        f"{strategy!r}; accepted: freeze_backbone=False, or "
        "backbone_strategy='freeze'.")
  if checkpoint and modules not in CHECKPOINT_MODULES:
    raise ValueError(
        f'task.init_checkpoint_modules={modules!r} is not supported; '
        "accepted: 'backbone' (a classification checkpoint's backbone) or "
        "'all' (a whole trained detector, e.g. stage 1's, which stage 2 of "
        'the LVIS recipe starts from).')
  if getattr(task_config, 'train_only_box_classifier', False) and (
      not checkpoint or modules != 'all'):
    raise ValueError(
        'task.train_only_box_classifier=True (stage 2) retrains the box '
        'classifier of a trained detector; it needs task.init_checkpoint = '
        "the stage-1 model dir and task.init_checkpoint_modules='all', got "
        f'{checkpoint!r} and {modules!r}.')
  drop_rate = getattr(task_config.model.backbone.get(),
                      'stochastic_depth_drop_rate', 0.0) or 0.0
  if (is_frozen(strategy) or strategy == PARTIAL) and drop_rate > 0:
    raise ValueError(
        'task.model.backbone.*.stochastic_depth_drop_rate='
        f'{drop_rate} would keep perturbing a frozen backbone; accepted with '
        f'backbone_strategy={strategy!r}: 0.0.')
  if strategy == ADAPTERS:
    _validate_adapters(task_config)
  _validate_frozen_stages(task_config)


def _validate_frozen_stages(task_config) -> None:
  strategy = task_config.backbone_strategy
  stages = task_config.frozen_stages
  if strategy != PARTIAL:
    if stages != FROZEN_STAGES_UNSET:
      raise ValueError(
          f'task.frozen_stages={stages} applies only to backbone_strategy='
          f"'partial', not {strategy!r}; accepted: leave it unset "
          f'({FROZEN_STAGES_UNSET}), or use backbone_strategy=\'partial\'.')
    return
  backbone_type = task_config.model.backbone.type
  if backbone_type != 'resnet':
    raise ValueError(
        f'task.model.backbone.type={backbone_type!r} has no stages for '
        "backbone_strategy='partial' yet; accepted: 'resnet'.")
  groups = len(freezing.RESNET_LEVELS)
  if not 0 <= stages <= groups:
    raise ValueError(
        f'task.frozen_stages={stages} is out of range for a ResNet with '
        f'{groups} block groups; accepted with backbone_strategy='
        f"'partial': 0 (the stem only) to {groups} (the whole backbone).")


def _validate_adapters(task_config) -> None:
  config = task_config.adapters
  backbone_type = task_config.model.backbone.type
  if backbone_type != 'resnet':
    raise ValueError(
        f'task.model.backbone.type={backbone_type!r} has no adapter placement'
        " yet; accepted with backbone_strategy='adapters': 'resnet'.")
  if config.type not in adapters.TYPES:
    raise ValueError(f'task.adapters.type={config.type!r} is not supported; '
                     f'accepted: {", ".join(adapters.TYPES)}.')
  bad = [l for l in config.levels or () if l not in adapters.LEVELS]
  if bad:
    raise ValueError(f'task.adapters.levels={list(config.levels)} names '
                     f'levels {bad} that have no residual blocks; accepted: '
                     f'a subset of {list(adapters.LEVELS)} (empty: all).')
  if not config.learning_rate_multiplier > 0:
    raise ValueError('task.adapters.learning_rate_multiplier='
                     f'{config.learning_rate_multiplier}; accepted: a '
                     'positive number (1: the heads\' learning rate).')
  if config.reduction < 0:
    raise ValueError(f'task.adapters.reduction={config.reduction}; accepted: '
                     '0 (full-width 1x1) or a positive reduction factor.')


def build_backbone(
    input_specs: tf_keras.layers.InputSpec,
    model_config,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer],
    strategy: str,
    adapters_config=None,
    frozen_stages: int = FROZEN_STAGES_UNSET,
) -> tf_keras.Model:
  """Builds the detector's backbone as the strategy requires.

  Args:
    input_specs: the image input spec, shape [batch, height, width, 3].
    model_config: a detector model config (`backbone`, `norm_activation`,
      `backbone_activation`: if set, the backbone's activation).
    l2_regularizer: the task's weight-decay regulariser; dropped for a frozen
      backbone so that its weights add nothing to the loss.
    strategy: one of STRATEGIES.
    adapters_config: task.adapters (used by the 'adapters' strategy).
    frozen_stages: task.frozen_stages (used by the 'partial' strategy).

  Returns:
    The backbone; non-trainable when the strategy freezes it, except for
    its adapters.
  """
  frozen = is_frozen(strategy)
  partial = strategy == PARTIAL
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
    freezing.freeze_resnet_stages(backbone, frozen_stages, l2_regularizer)
    return backbone
  if strategy == ADAPTERS:
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
    backbone = adapters.build_adapted_resnet(backbone, input_specs, options,
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
