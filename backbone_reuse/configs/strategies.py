"""Backbone strategies as config values: their names and their validation.

What each strategy means, and how a backbone is built for it, is in
backbone_reuse/modeling/strategy.py (the one place that decides which
backbone variables train). This module holds only what a config needs to be
checked -- names, accepted values, one-line refusals -- and imports no model
code, so configs can be validated without building or importing Keras layers.
"""
from typing import Tuple

SCRATCH = 'scratch'
FINETUNE = 'finetune'
FREEZE = 'freeze'
ADAPTERS = 'adapters'
PARTIAL = 'partial'
STRATEGIES = (SCRATCH, FINETUNE, FREEZE, ADAPTERS, PARTIAL)
# task.frozen_stages when it does not apply (any strategy but partial).
FROZEN_STAGES_UNSET = -1
# task.init_checkpoint_modules: the backbone only, or a whole trained detector.
BACKBONE_ONLY = 'backbone'
WHOLE_DETECTOR = 'all'
CHECKPOINT_MODULES = (BACKBONE_ONLY, WHOLE_DETECTOR)
# Residual adapters (task.adapters): kinds, and the ResNet levels whose
# block groups can carry them.
ADAPTER_SERIES = 'series'
ADAPTER_PARALLEL = 'parallel'
ADAPTER_TYPES = (ADAPTER_SERIES, ADAPTER_PARALLEL)
# Model Garden's ResNet: block group i (1-based) produces level i + 1.
RESNET_LEVELS = (2, 3, 4, 5)
# Model Garden's EfficientNet block groups (EN_B0_BLOCK_SPECS; B1-B7 scale
# each group's repeats, not their number).
EFFICIENTNET_GROUPS = 7
# Plain ViT backbone types: Model Garden's (sized by VIT_SPECS) and ours
# (sized by its config; configs/detection.PlainViT).
PLAIN_VIT = 'plain_vit'
VIT_TYPES = ('vit', PLAIN_VIT)
# Block groups per backbone type with stages for 'partial'; a plain ViT's
# stages are its transformer blocks (its config's transformer.num_layers).
BLOCK_GROUPS = {'resnet': len(RESNET_LEVELS),
                'efficientnet': EFFICIENTNET_GROUPS}
PARTIAL_BACKBONES = (*BLOCK_GROUPS, PLAIN_VIT)
# Backbone types with an adapter placement (modeling/adapters.py).
ADAPTER_BACKBONES = ('resnet', 'efficientnet')


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
  if strategy == SCRATCH and checkpoint and modules != WHOLE_DETECTOR:
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
      not checkpoint or modules != WHOLE_DETECTOR):
    raise ValueError(
        'task.train_only_box_classifier=True (stage 2) retrains the box '
        'classifier of a trained detector; it needs task.init_checkpoint = '
        "the stage-1 model dir and task.init_checkpoint_modules='all', got "
        f'{checkpoint!r} and {modules!r}.')
  if is_frozen(strategy) or strategy == PARTIAL:
    _refuse_random_layers(task_config.model.backbone, strategy)
  if strategy == ADAPTERS:
    _validate_adapters(task_config)
  _validate_frozen_stages(task_config)


def _refuse_random_layers(backbone_config, strategy: str) -> None:
  """Stochastic depth and dropout inside a backbone whose weights (or
  first blocks) are frozen would keep perturbing the frozen features
  (Keras does not switch them off with trainable=False, as it does a
  BatchNorm's statistics)."""
  config = backbone_config.get()
  rates = {'stochastic_depth_drop_rate': getattr(
      config, 'stochastic_depth_drop_rate', 0.0)}
  if backbone_config.type in VIT_TYPES:
    rates = {'init_stochastic_depth_rate': config.init_stochastic_depth_rate,
             'transformer.dropout_rate': config.transformer.dropout_rate,
             'transformer.attention_dropout_rate':
                 config.transformer.attention_dropout_rate}
  for field, rate in rates.items():
    if (rate or 0.0) > 0:
      raise ValueError(
          f'task.model.backbone.{backbone_config.type}.{field}={rate} would '
          'keep perturbing a frozen backbone; accepted with '
          f'backbone_strategy={strategy!r}: 0.0.')


def _frozen_stage_range(backbone_config) -> Tuple[int, str, str]:
  """(the stages 'partial' can freeze, what stage 0 is, the backbone in
  words) of a backbone type in PARTIAL_BACKBONES."""
  kind = backbone_config.type
  if kind == PLAIN_VIT:
    blocks = backbone_config.get().transformer.num_layers
    return (blocks, 'the patch and position embeddings only',
            f'a plain ViT with {blocks} transformer blocks')
  groups = BLOCK_GROUPS[kind]
  title = {'resnet': 'a ResNet', 'efficientnet': 'an EfficientNet'}[kind]
  return groups, 'the stem only', f'{title} with {groups} block groups'


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
  if backbone_type not in PARTIAL_BACKBONES:
    raise ValueError(
        f'task.model.backbone.type={backbone_type!r} has no stages for '
        "backbone_strategy='partial' yet; accepted: "
        f'{", ".join(map(repr, PARTIAL_BACKBONES))}.')
  last, first, backbone = _frozen_stage_range(task_config.model.backbone)
  if not 0 <= stages <= last:
    raise ValueError(
        f'task.frozen_stages={stages} is out of range for {backbone}; '
        "accepted with backbone_strategy='partial': "
        f'0 ({first}) to {last} (the whole backbone).')


def _validate_adapters(task_config) -> None:
  config = task_config.adapters
  backbone_type = task_config.model.backbone.type
  if backbone_type not in ADAPTER_BACKBONES:
    raise ValueError(
        f'task.model.backbone.type={backbone_type!r} has no adapter placement'
        " yet; accepted with backbone_strategy='adapters': "
        f'{", ".join(map(repr, ADAPTER_BACKBONES))}.')
  if config.type not in ADAPTER_TYPES:
    raise ValueError(f'task.adapters.type={config.type!r} is not supported; '
                     f'accepted: {", ".join(ADAPTER_TYPES)}.')
  bad = [l for l in config.levels or () if l not in RESNET_LEVELS]
  if bad:
    raise ValueError(f'task.adapters.levels={list(config.levels)} names '
                     f'levels {bad} that have no residual blocks; accepted: '
                     f'a subset of {list(RESNET_LEVELS)} (empty: all).')
  if not config.learning_rate_multiplier > 0:
    raise ValueError('task.adapters.learning_rate_multiplier='
                     f'{config.learning_rate_multiplier}; accepted: a '
                     'positive number (1: the heads\' learning rate).')
  if config.reduction < 0:
    raise ValueError(f'task.adapters.reduction={config.reduction}; accepted: '
                     '0 (full-width 1x1) or a positive reduction factor.')
