"""Detection task configs with `backbone_strategy`, and their experiments.

Each registered experiment is Model Garden's base experiment of its detector
family (`detection_experiment`) in these config types; the paper's rows are
that + YAMLs under configs/, which carry the authors' published values
(tests/test_published_configs.py holds them field by field).
"""
import dataclasses
import os
from typing import List

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import tf_utils
from official.vision.configs import backbones
from official.vision.configs import decoders
from official.vision.configs import maskrcnn as maskrcnn_config
from official.vision.configs import retinanet as retinanet_config

from backbone_reuse.dataloaders import tfds_names
from backbone_reuse.configs import class_balanced
from backbone_reuse.configs import strategies

DETECTORS = ('fasterrcnn', 'maskrcnn', 'cascadercnn', 'retinanet')
# COCO is Model Garden's base; LVIS v1 changes its data and head.
DATASETS = ('coco', 'lvis')
LVIS_DIR = 'lvis'
LVIS_VAL_IMAGES = 19809
LVIS_NUM_CLASSES = 1204  # 1203 categories + background.


class _StrategyValidation:
  """Adds the backbone-strategy, activation and class-map checks to
  `validate()`."""

  def validate(self):
    super().validate()
    strategies.validate_task_config(self)
    _validate_activations(self.model)
    _validate_decoder_for_backbone(self.model)
    _validate_class_map(self)


SIMPLE_FPN_NORMS = ('layer_norm', 'batch_norm', 'none')


def is_detection_task(task) -> bool:
  """Whether a task config is one of our detection tasks (R-CNN family,
  LVIS, RetinaNet: each has a backbone strategy), not e.g. the upstream
  classification task."""
  return hasattr(task, 'backbone_strategy')


def records_carry_class_indices(task) -> bool:
  """Whether a task's records hold class indices (LVIS: our converter
  compacts the ids), not the dataset's category ids (COCO-style records)."""
  return isinstance(task, LvisMaskRCNNTask)


def _validate_decoder_for_backbone(model) -> None:
  """A plain ViT gives one feature level: only the simple feature pyramid
  builds a pyramid from it (Model Garden's FPN fails late on it), and the
  simple pyramid serves nothing else."""
  backbone, decoder = model.backbone.type, model.decoder.type
  if backbone in strategies.VIT_TYPES:
    if decoder != 'simple_fpn':
      raise ValueError(
          f"task.model.decoder.type={decoder!r} cannot serve a plain ViT's "
          f"single feature level; accepted with backbone {backbone!r}: "
          "'simple_fpn'.")
    if not model.backbone.get().output_2d_feature_maps:
      raise ValueError(
          f'task.model.backbone.{backbone}.output_2d_feature_maps=False gives '
          "no feature map for decoder 'simple_fpn'; accepted: True.")
  elif decoder == 'simple_fpn':
    raise ValueError(
        f"task.model.decoder.type='simple_fpn' builds from a plain ViT's one "
        f'level; backbone {backbone!r} gives several: accepted decoders '
        "'fpn', 'nasfpn', 'bottleneck_nasfpn'.")
  if backbone == strategies.PLAIN_VIT:
    _validate_plain_vit_sizes(model.backbone.plain_vit)
  if decoder == 'simple_fpn':
    norm = model.decoder.simple_fpn.norm
    if norm not in SIMPLE_FPN_NORMS:
      raise ValueError(f'task.model.decoder.simple_fpn.norm={norm!r}; '
                       f'accepted: {", ".join(SIMPLE_FPN_NORMS)}.')


def _validate_plain_vit_sizes(config) -> None:
  """A plain ViT's sizes are set (Model Garden's config defaults them to 1,
  placeholders its 'vit' type overrides from model_name) and consistent."""
  sizes = {'hidden_size': config.hidden_size,
           'transformer.mlp_dim': config.transformer.mlp_dim}
  unset = [f'{name}={value}' for name, value in sizes.items() if value <= 1]
  if unset:
    raise ValueError(
        f'task.model.backbone.plain_vit.{", ".join(unset)}: Model Garden\'s '
        "placeholder sizes ('vit' takes its sizes from model_name, "
        "'plain_vit' from these fields); accepted: the ViT's sizes, e.g. "
        'DeiT-B/16: patch_size 16, hidden_size 768, transformer.mlp_dim '
        '3072, transformer.num_heads 12, transformer.num_layers 12.')
  if config.hidden_size % config.transformer.num_heads:
    raise ValueError(
        f'task.model.backbone.plain_vit.hidden_size={config.hidden_size} is '
        f'not divisible by transformer.num_heads='
        f'{config.transformer.num_heads}; accepted: a multiple of it.')


def _validate_class_map(task) -> None:
  """`class_category_ids` names each class once and fills the head."""
  ids = list(task.class_category_ids or ())
  if not ids:
    return
  if ids != sorted(set(ids)):
    raise ValueError(f'task.class_category_ids={ids}; accepted: ascending '
                     'ids, none repeated (class index i is the i-th).')
  num_classes = task.model.num_classes
  if num_classes and num_classes != len(ids) + 1:
    raise ValueError(
        f'task.model.num_classes={num_classes} does not match the '
        f'{len(ids)} ids of task.class_category_ids + background; accepted: '
        f'{len(ids) + 1}, or 0 (taken from the map).')


def _validate_activations(model) -> None:
  """Refuses a per-component activation Model Garden cannot build."""
  fields = {'backbone_activation': model.backbone_activation}
  if isinstance(model.decoder, Decoder):
    fields['decoder.bottleneck_nasfpn.activation'] = (
        model.decoder.bottleneck_nasfpn.activation)
  for field, value in fields.items():
    if not value:
      continue
    try:
      tf_utils.get_activation(value)
    except ValueError as e:
      raise ValueError(
          f'task.model.{field}={value!r} is not an activation Model Garden '
          "knows (e.g. 'relu', 'swish', 'gelu'); '' uses "
          'task.model.norm_activation.activation.') from e


@dataclasses.dataclass
class Adapters(hyperparams.Config):
  """Residual adapters, used with backbone_strategy 'adapters'.

  See backbone_reuse/modeling/adapters.py for the two kinds and placement.
  """
  type: str = 'series'  # 'series' (Rebuffi 2017) or 'parallel' (2018).
  # ResNet block groups (levels 2-5) whose 3x3 convs get adapters; empty:
  # every block of the ResNet.
  levels: List[int] = dataclasses.field(default_factory=list)
  reduction: int = 0  # 0: full-width 1x1 conv; r: low-rank C -> C/r -> C.
  zero_init: bool = True  # False: He init, as Rebuffi et al.
  l2_weight_decay: float = 1e-4  # On adapter kernels only.
  # Scales the gradient reaching the adapter kernels: with SGD, their
  # learning rate relative to the heads'. 1: the same rate.
  learning_rate_multiplier: float = 1.0


@dataclasses.dataclass
class ClassBalancedLoss(hyperparams.Config):
  """Per-class weights on the box classifier's cross-entropy.

  See backbone_reuse/configs/class_balanced.py for the formulas.
  """
  type: str = class_balanced.NONE  # none|effective_number|inverse_frequency
  beta: float = 0.999  # effective_number only (Cui et al. 2019).
  # COCO/LVIS JSON of the training split: per-class annotation counts.
  annotation_file: str = ''
  # Set when the config is resolved (configs/resolve.py fill_class_weights):
  # the weights computed from `annotation_file` are then in
  # task.losses.class_weights, so params.yaml holds what training used and
  # building the task reads no file.
  resolved: bool = False

  def validate(self):
    if self.type not in class_balanced.TYPES:
      raise ValueError(
          f'task.class_balanced_loss.type={self.type!r}; accepted: '
          f'{", ".join(class_balanced.TYPES)}.')
    if self.type != class_balanced.NONE and not self.annotation_file:
      raise ValueError(
          f'task.class_balanced_loss.type={self.type!r} needs '
          'task.class_balanced_loss.annotation_file (the training JSON, for '
          'per-class annotation counts).')


@dataclasses.dataclass
class BottleneckNASFPN(hyperparams.Config):
  """NAS-FPN with bottleneck-block nodes (modeling/decoders.py)."""
  num_filters: int = 256  # Block inner width; outputs are 4x as wide.
  num_repeats: int = 5
  block_repeats: int = 1  # Bottleneck blocks per NAS-FPN node.
  # Ghiasi et al.'s options: sum in every node (no global attention), and
  # stochastic depth on every node block (their init_drop_connect_rate).
  use_sum_for_combination: bool = False
  drop_connect_rate: float = 0.0
  # '': the model's norm_activation.activation. Ghiasi et al. run their
  # NAS-FPN with swish and the heads with ReLU.
  activation: str = ''


@dataclasses.dataclass
class SimpleFPN(hyperparams.Config):
  """ViTDet's simple feature pyramid over a plain ViT's one level
  (modeling/simple_fpn.py)."""
  num_filters: int = 256
  norm: str = 'layer_norm'  # layer_norm (ViTDet's) | batch_norm | none


@dataclasses.dataclass
class Decoder(decoders.Decoder):
  """Model Garden's decoder choice, plus types 'bottleneck_nasfpn' and
  'simple_fpn'."""
  bottleneck_nasfpn: BottleneckNASFPN = dataclasses.field(
      default_factory=BottleneckNASFPN)
  simple_fpn: SimpleFPN = dataclasses.field(default_factory=SimpleFPN)


@dataclasses.dataclass
class PlainViT(backbones.VisionTransformer):
  """A plain ViT sized by these fields (modeling/plain_vit.py): Model
  Garden's `vit` type takes its sizes from VIT_SPECS[model_name], whose
  smallest is ViT-Ti/16. A detector reads its one 2-D feature map (level
  log2(patch_size)), so only decoder 'simple_fpn' serves it."""
  model_name: str = ''  # Unused: the sizes are the fields below.
  output_2d_feature_maps: bool = True


@dataclasses.dataclass
class Backbone(backbones.Backbone):
  """Model Garden's backbone choice, plus type 'plain_vit'."""
  plain_vit: PlainViT = dataclasses.field(default_factory=PlainViT)


def _resnet_backbone() -> Backbone:
  return Backbone(type='resnet', resnet=backbones.ResNet())


@dataclasses.dataclass
class MaskRCNN(maskrcnn_config.MaskRCNN):
  """Model Garden's R-CNN model config with our backbone and decoder
  choices."""
  backbone: Backbone = dataclasses.field(default_factory=_resnet_backbone)
  decoder: Decoder = dataclasses.field(
      default_factory=lambda: Decoder(type='fpn', fpn=decoders.FPN()))
  # '': norm_activation.activation, which the decoder and heads use. An
  # EfficientNet trained with swish keeps it under ReLU heads (Ghiasi et al.).
  backbone_activation: str = ''


@dataclasses.dataclass
class RetinaNet(retinanet_config.RetinaNet):
  """Model Garden's RetinaNet model config with our backbone and decoder
  choices and `backbone_activation`."""
  backbone: Backbone = dataclasses.field(default_factory=_resnet_backbone)
  decoder: Decoder = dataclasses.field(
      default_factory=lambda: Decoder(type='fpn', fpn=decoders.FPN()))
  backbone_activation: str = ''


@dataclasses.dataclass
class CopyPaste(hyperparams.Config):
  """Copy-Paste augmentation (Ghiasi et al. 2021), training data only.

  See backbone_reuse/dataloaders/copy_paste.py. The parser's aug_scale_min,
  aug_scale_max and aug_rand_hflip then drive the jitter of both images.
  """
  enabled: bool = False
  blend_sigma: float = 0.0  # 0: hard paste; > 0: Gaussian-blurred alpha (px).
  # An object (target or pasted) is dropped when fewer pixels than this
  # remain visible, or less than this fraction of its area.
  min_visible_pixels: int = 4
  min_visible_fraction: float = 0.05
  source_shuffle_buffer_size: int = 64  # The second, shuffled stream.
  seed: int = 0


@dataclasses.dataclass
class Parser(maskrcnn_config.Parser):
  copy_paste: CopyPaste = dataclasses.field(default_factory=CopyPaste)


@dataclasses.dataclass
class RepeatFactorSampling(hyperparams.Config):
  """Gupta et al.'s repeat-factor sampling (dataloaders/repeat_factor.py).

  Training data only; LVIS uses threshold 0.001.
  """
  threshold: float = 0.0  # 0: off.
  # COCO/LVIS JSON of the training split: per-class image fractions.
  annotation_file: str = ''
  seed: int = 0


@dataclasses.dataclass
class DataConfig(maskrcnn_config.DataConfig):
  """Model Garden's R-CNN data config, with Copy-Paste on the parser and
  repeat-factor sampling."""
  parser: Parser = dataclasses.field(default_factory=Parser)
  repeat_factor_sampling: RepeatFactorSampling = dataclasses.field(
      default_factory=RepeatFactorSampling)


@dataclasses.dataclass
class MaskRCNNTask(_StrategyValidation, maskrcnn_config.MaskRCNNTask):
  """Faster / Mask / Cascade R-CNN task with a backbone reuse strategy."""
  backbone_strategy: str = strategies.SCRATCH
  init_checkpoint_modules: str = 'backbone'
  adapters: Adapters = dataclasses.field(default_factory=Adapters)
  # backbone_strategy 'partial': the stem and this many block groups frozen.
  frozen_stages: int = strategies.FROZEN_STAGES_UNSET
  model: MaskRCNN = dataclasses.field(default_factory=MaskRCNN)
  # The dataset's category ids of class indices 1..K, in that order, when
  # its ids are not 1..K: resolving `num_classes: 0` fills it from
  # task.annotation_file; labels are mapped where decoded, predictions
  # mapped back where scored and exported. Empty: the records' labels are the
  # class indices (Model Garden's convention; COCO's paper rows, LVIS).
  class_category_ids: List[int] = dataclasses.field(default_factory=list)
  train_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=True))
  validation_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=False))
  # Stage 2 of the LVIS recipe: restore a trained detector (modules 'all')
  # and train only the box heads' final classification layers.
  train_only_box_classifier: bool = False
  class_balanced_loss: ClassBalancedLoss = dataclasses.field(
      default_factory=ClassBalancedLoss)

  def validate(self):
    super().validate()
    self.class_balanced_loss.validate()
    if self.model.include_mask:
      missing = [f'task.model.{name}' for name in
                 ('mask_head', 'mask_sampler', 'mask_roi_aligner')
                 if getattr(self.model, name) is None]
      if missing:  # Model Garden's builder would fail on None much later.
        raise ValueError(
            f'task.model.include_mask=True needs {", ".join(missing)}; '
            'accepted: each set (e.g. mask_roi_aligner: {crop_size: 14}, '
            'mask_sampler: {num_sampled_masks: 128}, mask_head: '
            '{num_convs: 4}), or include_mask=False.')
    copy_paste = self.train_data.parser.copy_paste
    if copy_paste.enabled and not self.model.include_mask:
      raise ValueError(
          'task.train_data.parser.copy_paste.enabled=True pastes objects by '
          'their masks; it needs task.model.include_mask=True (Mask R-CNN).')
    if copy_paste.enabled and self.train_data.decoder.type != 'simple_decoder':
      raise ValueError(
          'task.train_data.parser.copy_paste.enabled=True works on Model '
          "Garden's TFRecord decoder; accepted task.train_data.decoder.type: "
          f"'simple_decoder', got {self.train_data.decoder.type!r}.")
    sampling = self.train_data.repeat_factor_sampling
    if sampling.threshold < 0 or (sampling.threshold > 0
                                  and not sampling.annotation_file):
      raise ValueError(
          'task.train_data.repeat_factor_sampling: threshold='
          f'{sampling.threshold} needs threshold >= 0 and, when > 0, '
          'annotation_file (the training JSON, for per-class image '
          'fractions).')
    for name in ('train_data', 'validation_data'):
      data = getattr(self, name)
      if not data.tfds_name:
        continue
      family = tfds_names.family(data.tfds_name)
      if family not in tfds_names.ACCEPTED:
        raise ValueError(
            f'task.{name}.tfds_name={data.tfds_name!r}: the R-CNN input '
            'reads TFRecords and these TFDS datasets: '
            f'{", ".join(tfds_names.ACCEPTED)} (or convert to TFRecords).')
      if family == tfds_names.COCO and self.model.include_mask:
        raise ValueError(
            f'task.{name}.tfds_name={data.tfds_name!r} carries no instance '
            'masks; task.model.include_mask=True (Mask R-CNN) needs them: '
            'use the box-only Faster / Cascade R-CNN experiments, or COCO '
            'TFRecords with masks (backbone_reuse.data.coco_tfrecord '
            '--include_masks).')
    if (self.class_balanced_loss.type != class_balanced.NONE
        and self.losses.class_weights
        and not self.class_balanced_loss.resolved):
      raise ValueError(
          'task.losses.class_weights and task.class_balanced_loss.type='
          f'{self.class_balanced_loss.type!r} both set class weights; '
          'accepted: one of them.')


@dataclasses.dataclass
class LvisMaskRCNNTask(MaskRCNNTask):
  """Mask R-CNN evaluated with the LVIS API (federated, 300 dets/image).

  `annotation_file` must be the LVIS-format JSON of the validation split.
  """

  def validate(self):
    super().validate()
    if self.class_category_ids:
      raise ValueError(
          f'task.class_category_ids={list(self.class_category_ids)}: LVIS '
          'records carry class indices already (data/lvis_tfrecord.py); '
          'accepted: [] for an LVIS task.')
    if not self.annotation_file:
      raise ValueError(
          'task.annotation_file is empty; LVIS evaluation needs the '
          'LVIS-format JSON of the validation split (e.g. '
          'lvis/lvis_v1_val.json).')


@dataclasses.dataclass
class RetinaNetTask(_StrategyValidation, retinanet_config.RetinaNetTask):
  """RetinaNet task with a backbone reuse strategy."""
  backbone_strategy: str = strategies.SCRATCH
  init_checkpoint_modules: str = 'backbone'
  adapters: Adapters = dataclasses.field(default_factory=Adapters)
  # backbone_strategy 'partial': the stem and this many block groups frozen.
  frozen_stages: int = strategies.FROZEN_STAGES_UNSET
  model: RetinaNet = dataclasses.field(default_factory=RetinaNet)
  # As MaskRCNNTask's: category ids of class indices 1..K, or empty.
  class_category_ids: List[int] = dataclasses.field(default_factory=list)

  def validate(self):
    super().validate()
    for name in ('train_data', 'validation_data'):
      tfds_name = getattr(self, name).tfds_name
      if tfds_name and tfds_names.family(tfds_name) != tfds_names.COCO:
        raise ValueError(
            f'task.{name}.tfds_name={tfds_name!r}: the RetinaNet input reads '
            f'TFRecords and TFDS {tfds_names.COCO!r} (coco/2017, labels as '
            'COCO category ids); accepted: one of those (or convert to '
            'TFRecords with backbone_reuse.data.coco_tfrecord).')


@dataclasses.dataclass
class ExperimentConfig(cfg.ExperimentConfig):
  """Validates the task too (Model Garden validates restrictions only)."""

  def validate(self):
    super().validate()
    self.task.validate()


# The Model Garden experiment each family starts from: the authors' published
# configs (tensorflow/models official/projects/backbone_reuse) are YAMLs on
# fasterrcnn_resnetfpn_coco (Faster and Cascade R-CNN) and
# retinanet_resnetfpn_coco; their values are in configs/coco/ and
# configs/schedules/.
MODEL_GARDEN_BASE = {
    'fasterrcnn': 'fasterrcnn_resnetfpn_coco',
    'cascadercnn': 'fasterrcnn_resnetfpn_coco',
    'maskrcnn': 'maskrcnn_resnetfpn_coco',
    'retinanet': 'retinanet_resnetfpn_coco',
}


def detection_experiment(detector: str,
                         dataset: str = 'coco') -> ExperimentConfig:
  """Model Garden's base experiment of `detector`, in our config types.

  Nothing of the paper is added here: a paper row is this + its YAMLs
  (configs/coco/ or configs/lvis/, configs/schedules/, configs/strategies/).
  What differs from the base: strategy 'scratch' without a checkpoint (the
  base names a ResNet-50 one); Cascade R-CNN's stages (IoUs 0.5/0.7/0.8,
  class ensemble, class-agnostic boxes, as the authors' cascade YAMLs set
  them); for LVIS its data, 1203 classes + background, up to 300 detections
  per image and the LVIS API's evaluation.

  Args:
    detector: one of DETECTORS.
    dataset: one of DATASETS.

  Returns:
    An unvalidated ExperimentConfig.
  """
  if detector not in DETECTORS:
    raise ValueError(f'detector={detector!r}; accepted: {DETECTORS}.')
  if dataset not in DATASETS:
    raise ValueError(f'dataset={dataset!r}; accepted: {DATASETS}.')
  if detector == 'retinanet':
    task = RetinaNetTask()
  else:
    task_cls = LvisMaskRCNNTask if dataset == 'lvis' else MaskRCNNTask
    task = task_cls(train_data=DataConfig(is_training=True),
                    validation_data=DataConfig(is_training=False))
  config = ExperimentConfig(
      task=task, restrictions=['task.train_data.is_training != None',
                               'task.validation_data.is_training != None'])
  config.override(
      exp_factory.get_exp_config(MODEL_GARDEN_BASE[detector]).as_dict(),
      is_strict=True)
  config.task.init_checkpoint = ''
  if detector == 'cascadercnn':  # Two more stages on the Faster R-CNN base.
    model = config.task.model
    model.roi_sampler.cascade_iou_thresholds = [0.7, 0.8]
    model.detection_head.cascade_class_ensemble = True
    model.detection_head.class_agnostic_bbox_pred = True
  if dataset == 'lvis':
    _to_lvis(config)
  return config


def _to_lvis(config: ExperimentConfig) -> None:
  task = config.task
  task.model.num_classes = LVIS_NUM_CLASSES
  task.model.detection_generator.max_num_detections = 300
  task.train_data.input_path = os.path.join(LVIS_DIR, 'train*')
  task.validation_data.input_path = os.path.join(LVIS_DIR, 'val*')
  task.annotation_file = os.path.join(LVIS_DIR, 'lvis_v1_val.json')
  # Per-class counts for the class-balanced loss and repeat-factor sampling.
  train_json = os.path.join(LVIS_DIR, 'lvis_v1_train.json')
  task.class_balanced_loss.annotation_file = train_json
  task.train_data.repeat_factor_sampling.annotation_file = train_json
  config.trainer.validation_steps = (
      LVIS_VAL_IMAGES // task.validation_data.global_batch_size)


@exp_factory.register_config_factory('backbone_reuse_fasterrcnn_coco')
def backbone_reuse_fasterrcnn_coco() -> ExperimentConfig:
  return detection_experiment('fasterrcnn', 'coco')


@exp_factory.register_config_factory('backbone_reuse_maskrcnn_coco')
def backbone_reuse_maskrcnn_coco() -> ExperimentConfig:
  return detection_experiment('maskrcnn', 'coco')


@exp_factory.register_config_factory('backbone_reuse_cascadercnn_coco')
def backbone_reuse_cascadercnn_coco() -> ExperimentConfig:
  return detection_experiment('cascadercnn', 'coco')


@exp_factory.register_config_factory('backbone_reuse_retinanet_coco')
def backbone_reuse_retinanet_coco() -> ExperimentConfig:
  return detection_experiment('retinanet', 'coco')


@exp_factory.register_config_factory('backbone_reuse_maskrcnn_lvis')
def backbone_reuse_maskrcnn_lvis() -> ExperimentConfig:
  return detection_experiment('maskrcnn', 'lvis')
