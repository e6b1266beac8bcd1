"""Detection task configs with `backbone_strategy`, and the paper's recipe.

The registered experiments share one factory, `detection_experiment`, whose
defaults are the paper's ResNet recipe (§4.1): ResNet-RS-style ResNet-101
(SE 0.25, ResNet-D shortcut, stem max-pool replaced, scaled stem), swish,
1280x1280 input, large-scale jitter 0.1-2.0, batch 64, learning rate 0.08,
600 epochs. Architecture, schedule and strategy YAMLs under configs/ refine it.
"""
import dataclasses
import functools
import os
from typing import List

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import optimization
from official.vision.configs import backbones
from official.vision.configs import common
from official.vision.configs import decoders
from official.vision.configs import maskrcnn as maskrcnn_config
from official.vision.configs import retinanet as retinanet_config

from backbone_reuse.dataloaders import lvis_tfds
from backbone_reuse.modeling import class_balanced
from backbone_reuse.modeling import strategy

COCO_TRAIN_IMAGES = 118287
COCO_VAL_IMAGES = 5000
LVIS_TRAIN_IMAGES = 100170
LVIS_VAL_IMAGES = 19809
PAPER_BATCH_SIZE = 64
PAPER_LEARNING_RATE = 0.08  # For batch 64 (paper §4.1).
PAPER_EPOCHS = 600

DETECTORS = ('fasterrcnn', 'maskrcnn', 'cascadercnn', 'retinanet')
DATASETS = {
    # name: (input path base, train images, val images, classes incl. bg).
    'coco': ('coco', COCO_TRAIN_IMAGES, COCO_VAL_IMAGES, 91),
    'lvis': ('lvis', LVIS_TRAIN_IMAGES, LVIS_VAL_IMAGES, 1204),
}


class _StrategyValidation:
  """Adds the backbone-strategy checks to a task config's `validate()`."""

  def validate(self):
    super().validate()
    strategy.validate_task_config(self)


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


@dataclasses.dataclass
class ClassBalancedLoss(hyperparams.Config):
  """Per-class weights on the box classifier's cross-entropy.

  See backbone_reuse/modeling/class_balanced.py for the formulas.
  """
  type: str = class_balanced.NONE  # none|effective_number|inverse_frequency
  beta: float = 0.999  # effective_number only (Cui et al. 2019).
  # COCO/LVIS JSON of the training split: per-class annotation counts.
  annotation_file: str = ''

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


@dataclasses.dataclass
class Decoder(decoders.Decoder):
  """Model Garden's decoder choice, plus type 'bottleneck_nasfpn'."""
  bottleneck_nasfpn: BottleneckNASFPN = dataclasses.field(
      default_factory=BottleneckNASFPN)


@dataclasses.dataclass
class MaskRCNN(maskrcnn_config.MaskRCNN):
  """Model Garden's R-CNN model config with our decoder choice."""
  decoder: Decoder = dataclasses.field(
      default_factory=lambda: Decoder(type='fpn', fpn=decoders.FPN()))


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
  backbone_strategy: str = strategy.SCRATCH
  init_checkpoint_modules: str = 'backbone'
  adapters: Adapters = dataclasses.field(default_factory=Adapters)
  model: MaskRCNN = dataclasses.field(default_factory=MaskRCNN)
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
      tfds_name = getattr(self, name).tfds_name
      if tfds_name and not lvis_tfds.is_lvis(tfds_name):
        raise ValueError(
            f'task.{name}.tfds_name={tfds_name!r}: Model Garden\'s R-CNN '
            'input reads TFRecords; accepted TFDS datasets: '
            f'{", ".join(lvis_tfds.TFDS_NAMES)} (or convert to TFRecords).')
    if (self.class_balanced_loss.type != class_balanced.NONE
        and self.losses.class_weights):
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
    if not self.annotation_file:
      raise ValueError(
          'task.annotation_file is empty; LVIS evaluation needs the '
          'LVIS-format JSON of the validation split (e.g. '
          'lvis/lvis_v1_val.json).')


@dataclasses.dataclass
class RetinaNetTask(_StrategyValidation, retinanet_config.RetinaNetTask):
  """RetinaNet task with a backbone reuse strategy."""
  backbone_strategy: str = strategy.SCRATCH
  init_checkpoint_modules: str = 'backbone'
  adapters: Adapters = dataclasses.field(default_factory=Adapters)


@dataclasses.dataclass
class ExperimentConfig(cfg.ExperimentConfig):
  """Validates the task too (Model Garden validates restrictions only)."""

  def validate(self):
    super().validate()
    self.task.validate()


def resnet_rs(model_id: int = 101) -> backbones.Backbone:
  """The paper's ResNet-RS-style backbone (Bello et al. 2021)."""
  return backbones.Backbone(
      type='resnet',
      resnet=backbones.ResNet(
          model_id=model_id,
          stem_type='v1',
          se_ratio=0.25,
          resnetd_shortcut=True,
          replace_stem_max_pool=True,
          scale_stem=True,
          stochastic_depth_drop_rate=0.0))


def optimizer_config(steps_per_epoch: int, epochs: int,
                     learning_rate: float) -> optimization.OptimizationConfig:
  """SGD with linear warm-up and x0.1 decays at 95% and 98% of training.

  The paper gives epochs, batch and rate only; the decay points follow Model
  Garden's long-schedule detection recipes (e.g. cascadercnn_spinenet_coco).
  """
  total = steps_per_epoch * epochs
  return optimization.OptimizationConfig({
      'optimizer': {'type': 'sgd', 'sgd': {'momentum': 0.9}},
      'learning_rate': {
          'type': 'stepwise',
          'stepwise': {
              'boundaries': [int(total * 0.95), int(total * 0.98)],
              'values': [learning_rate, learning_rate / 10,
                         learning_rate / 100],
          },
      },
      'warmup': {
          'type': 'linear',
          'linear': {
              'warmup_steps': min(2000, total // 10),
              'warmup_learning_rate': 0.0067 * learning_rate / 0.32,
          },
      },
  })


def _data(input_path: str, is_training: bool, batch_size: int, data_cls):
  data = data_cls(input_path=input_path, is_training=is_training,
                  global_batch_size=batch_size, drop_remainder=is_training)
  if is_training:
    data.parser.aug_rand_hflip = True
    data.parser.aug_scale_min = 0.1  # Large-scale jitter (Ghiasi et al.).
    data.parser.aug_scale_max = 2.0
  return data


def _rcnn_model(detector: str, num_classes: int, image_size: int,
                max_detections: int):
  cascade = detector == 'cascadercnn'
  return MaskRCNN(
      num_classes=num_classes,
      input_size=[image_size, image_size, 3],
      min_level=3,
      max_level=7,
      include_mask=detector == 'maskrcnn',
      anchor=maskrcnn_config.Anchor(anchor_size=3),
      backbone=resnet_rs(101),
      decoder=Decoder(type='fpn', fpn=decoders.FPN()),
      roi_sampler=maskrcnn_config.ROISampler(
          cascade_iou_thresholds=[0.7, 0.8] if cascade else None),
      detection_head=maskrcnn_config.DetectionHead(
          class_agnostic_bbox_pred=cascade, cascade_class_ensemble=cascade),
      detection_generator=maskrcnn_config.DetectionGenerator(
          max_num_detections=max_detections),
      norm_activation=common.NormActivation(
          activation='swish', use_sync_bn=True, norm_momentum=0.99,
          norm_epsilon=0.001))


def _retinanet_model(num_classes: int, image_size: int):
  return retinanet_config.RetinaNet(
      num_classes=num_classes,
      input_size=[image_size, image_size, 3],
      min_level=3,
      max_level=7,
      backbone=resnet_rs(101),
      decoder=decoders.Decoder(type='fpn', fpn=decoders.FPN()),
      norm_activation=common.NormActivation(
          activation='swish', use_sync_bn=True, norm_momentum=0.99,
          norm_epsilon=0.001))


def detection_experiment(detector: str, dataset: str = 'coco',
                         image_size: int = 1280) -> ExperimentConfig:
  """The paper's recipe for one detector family on COCO or LVIS.

  Args:
    detector: one of DETECTORS.
    dataset: 'coco' or 'lvis' (LVIS: TFRecords from data/lvis_tfrecord.py,
      a 1203-class + background head, up to 300 detections per image and
      the LVIS API's evaluation).
    image_size: square training/eval resolution.

  Returns:
    An ExperimentConfig, strategy 'scratch'; choose another in a YAML.
  """
  if detector not in DETECTORS:
    raise ValueError(f'detector={detector!r}; accepted: {DETECTORS}.')
  if dataset not in DATASETS:
    raise ValueError(f'dataset={dataset!r}; accepted: {tuple(DATASETS)}.')
  base, train_images, val_images, num_classes = DATASETS[dataset]
  steps_per_epoch = train_images // PAPER_BATCH_SIZE
  eval_batch_size = 8
  if detector == 'retinanet':
    task_cls, data_cls = RetinaNetTask, retinanet_config.DataConfig
    model = _retinanet_model(num_classes, image_size)
  else:
    task_cls = LvisMaskRCNNTask if dataset == 'lvis' else MaskRCNNTask
    data_cls = DataConfig
    model = _rcnn_model(detector, num_classes, image_size,
                        max_detections=300 if dataset == 'lvis' else 100)
  task = task_cls(
      model=model,
      annotation_file=os.path.join(
          base, 'instances_val2017.json' if dataset == 'coco'
          else 'lvis_v1_val.json'),
      train_data=_data(os.path.join(base, 'train*'), True, PAPER_BATCH_SIZE,
                       data_cls),
      validation_data=_data(os.path.join(base, 'val*'), False,
                            eval_batch_size, data_cls))
  task.losses.l2_weight_decay = 4e-5
  if dataset == 'lvis':  # Per-class counts for balanced loss / sampling.
    train_json = os.path.join(base, 'lvis_v1_train.json')
    task.class_balanced_loss.annotation_file = train_json
    task.train_data.repeat_factor_sampling.annotation_file = train_json
  return ExperimentConfig(
      runtime=cfg.RuntimeConfig(mixed_precision_dtype='bfloat16'),
      task=task,
      trainer=cfg.TrainerConfig(
          train_steps=steps_per_epoch * PAPER_EPOCHS,
          validation_steps=val_images // eval_batch_size,
          validation_interval=steps_per_epoch,
          steps_per_loop=steps_per_epoch,
          summary_interval=steps_per_epoch,
          checkpoint_interval=steps_per_epoch,
          optimizer_config=optimizer_config(
              steps_per_epoch, PAPER_EPOCHS, PAPER_LEARNING_RATE)),
      restrictions=[
          'task.train_data.is_training != None',
          'task.validation_data.is_training != None',
      ])


for _detector in DETECTORS:
  for _dataset in DATASETS:
    if _dataset == 'lvis' and _detector != 'maskrcnn':
      continue
    exp_factory.register_config_factory(
        f'backbone_reuse_{_detector}_{_dataset}')(
            functools.partial(detection_experiment, _detector, _dataset))
