"""Shapes-world experiments: upstream classification and downstream detectors.

Both share one backbone config (ResNet-18 at half width, same normalisation
and activation; or, in the shapes_vit_* experiments, a 4-block plain ViT), so
the classifier's checkpoint restores into the detector through the same
loader as an ImageNet checkpoint does. Sizes are chosen for
a 2-core CPU; data paths point at the demo's default output directory.
"""
import os

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import optimization
from official.vision.configs import backbones
from official.vision.configs import common
from official.vision.configs import decoders
from official.vision.configs import image_classification
from official.vision.configs import maskrcnn as maskrcnn_config

from backbone_reuse.configs import classification
from backbone_reuse.configs import detection
from backbone_reuse.configs import strategies
from backbone_reuse.shapes import world

DATA_DIR = os.path.join('runs', 'demo', 'data')
# The grid's axes (the paper's Table 1): detector capacity above the backbone
# (configs/shapes/capacity/NAME.yaml), backbone strategy
# (configs/strategies/NAME.yaml) and upstream set size.
CAPACITIES = ('fpn', 'nasfpn', 'nasfpn_cascade')
CAPACITY_TITLES = {'fpn': 'Faster R-CNN FPN', 'nasfpn': 'Faster R-CNN NAS-FPN',
                   'nasfpn_cascade': 'Cascade R-CNN NAS-FPN'}
STRATEGIES = (strategies.SCRATCH, strategies.FINETUNE, strategies.FREEZE,
              strategies.ADAPTERS, strategies.PARTIAL)
# The paper's Table 1 comparison: each seed trains this pair from one
# upstream checkpoint.
PAIR = (strategies.FINETUNE, strategies.FREEZE)
UPSTREAMS = ('small', 'large')


def backbone() -> detection.Backbone:
  return detection.Backbone(
      type='resnet',
      resnet=backbones.ResNet(model_id=18, depth_multiplier=0.5))


def vit_backbone() -> detection.Backbone:
  """A plain ViT at the Shapes sizes (modeling/plain_vit.py): patch 8, so one
  stride-8 level (level 3); 8x8 tokens on a 64-px upstream image, 16x16 on a
  128-px scene (the position embedding resized at restore), plus the class
  token the upstream classifier pools."""
  return detection.Backbone(
      type=strategies.PLAIN_VIT,
      plain_vit=detection.PlainViT(
          patch_size=8, hidden_size=128, pooler='token',
          representation_size=0,
          transformer=backbones.Transformer(mlp_dim=512, num_heads=4,
                                            num_layers=4)))


def norm_activation() -> common.NormActivation:
  return common.NormActivation(activation='relu', use_sync_bn=False,
                               norm_momentum=0.9, norm_epsilon=1e-3)


def _sgd(train_steps: int, learning_rate: float, warmup_steps: int):
  return optimization.OptimizationConfig({
      'optimizer': {'type': 'sgd', 'sgd': {'momentum': 0.9}},
      'learning_rate': {
          'type': 'cosine',
          'cosine': {'initial_learning_rate': learning_rate,
                     'decay_steps': train_steps},
      },
      'warmup': {'type': 'linear',
                 'linear': {'warmup_steps': warmup_steps,
                            'warmup_learning_rate': learning_rate / 10}},
  })


def _trainer(train_steps: int, learning_rate: float, validation_steps: int):
  return cfg.TrainerConfig(
      train_steps=train_steps,
      validation_steps=validation_steps,
      validation_interval=train_steps,
      steps_per_loop=50,
      summary_interval=50,
      checkpoint_interval=100,
      max_to_keep=2,
      optimizer_config=_sgd(train_steps, learning_rate,
                            max(1, train_steps // 20)))


def _classification(backbone_config) -> cfg.ExperimentConfig:
  """Upstream pretraining: 40-way classification of 64x64 Shapes images."""
  size = world.CLASSIFICATION_SIZE
  # No random-resized crop: it cuts shapes apart (measured on 3000 images,
  # 1000 steps: val top-1 0.25 with it, 0.66 without).
  data = dict(global_batch_size=64, aug_crop=False, shuffle_buffer_size=2000)
  return cfg.ExperimentConfig(
      runtime=cfg.RuntimeConfig(mixed_precision_dtype='float32'),
      task=image_classification.ImageClassificationTask(
          model=classification.ImageClassificationModel(
              num_classes=len(world.CLASSES),
              input_size=[size, size, 3],
              backbone=backbone_config,
              norm_activation=norm_activation()),
          losses=image_classification.Losses(l2_weight_decay=1e-4,
                                             label_smoothing=0.1),
          train_data=image_classification.DataConfig(
              input_path=os.path.join(DATA_DIR, 'upstream', 'train-*'),
              is_training=True, **data),
          validation_data=image_classification.DataConfig(
              input_path=os.path.join(DATA_DIR, 'upstream', 'val-*'),
              is_training=False, global_batch_size=64, drop_remainder=False)),
      # lr 0.05 at batch 64: at 0.2 the loss sat on a plateau (top-1 ~0.2)
      # until the cosine had decayed, and left it at a step that varied
      # with the seed (top-1 after 800 steps 0.29 / 0.65 / 0.43 in three
      # seeds; at 0.05: 0.77 / 0.82 / 0.81; 1600 steps at 0.05: >= 0.93).
      trainer=_trainer(train_steps=1600, learning_rate=0.05,
                       validation_steps=-1),
      restrictions=['task.train_data.is_training != None'])


@exp_factory.register_config_factory('shapes_classification')
def shapes_classification() -> cfg.ExperimentConfig:
  return _classification(backbone())


def _detector(include_mask: bool,
              backbone_config=None) -> cfg.ExperimentConfig:
  """Downstream: a two-stage detector on long-tailed 128x128 Shapes scenes;
  its capacity (decoder, cascade) comes from configs/shapes/capacity/."""
  size = world.DETECTION_SIZE
  det_dir = os.path.join(DATA_DIR, 'detection')
  model = detection.MaskRCNN(
      num_classes=len(world.CLASSES) + 1,
      input_size=[size, size, 3],
      min_level=3,
      max_level=5,
      anchor=maskrcnn_config.Anchor(num_scales=1, anchor_size=3),
      backbone=backbone_config or backbone(),
      decoder=detection.Decoder(type='fpn',
                                fpn=decoders.FPN(num_filters=64)),
      rpn_head=maskrcnn_config.RPNHead(num_convs=1, num_filters=64),
      detection_head=maskrcnn_config.DetectionHead(
          num_convs=0, num_fcs=1, fc_dims=256),
      # NMS by tf.image.combined_non_max_suppression (one C++ op) instead
      # of Model Garden's default padded NMS, written for TPUs as loops of
      # small ops: the same per-level proposals and per-class detections
      # (box AP 0.4309 either way on a grid checkpoint), but on this CPU it
      # cut inference over the 200 val images (tracing included) from 41 s
      # to 1.5 s and the training step by 16-35 %
      # (experiments/shapes/report/step_time.md).
      roi_generator=maskrcnn_config.ROIGenerator(
          pre_nms_top_k=1000, num_proposals=200, test_pre_nms_top_k=500,
          test_num_proposals=100, use_batched_nms=True),
      roi_sampler=maskrcnn_config.ROISampler(num_sampled_rois=64),
      detection_generator=maskrcnn_config.DetectionGenerator(
          max_num_detections=50, nms_version='batched'),
      include_mask=include_mask,
      mask_head=maskrcnn_config.MaskHead(num_convs=2, num_filters=64),
      mask_sampler=maskrcnn_config.MaskSampler(num_sampled_masks=32),
      norm_activation=norm_activation())
  train_data = detection.DataConfig(
      input_path=os.path.join(det_dir, 'train-*'), is_training=True,
      global_batch_size=8, dtype='float32', shuffle_buffer_size=1000)
  train_data.parser.aug_rand_hflip = True
  train_data.parser.aug_scale_min = 0.8
  train_data.parser.aug_scale_max = 1.25
  train_data.parser.mask_crop_size = 56
  task = detection.MaskRCNNTask(
      model=model,
      annotation_file=os.path.join(det_dir, 'val', 'annotations.json'),
      losses=maskrcnn_config.Losses(l2_weight_decay=1e-4),
      train_data=train_data,
      validation_data=detection.DataConfig(
          input_path=os.path.join(det_dir, 'val-*'), is_training=False,
          global_batch_size=8, dtype='float32', drop_remainder=False))
  return detection.ExperimentConfig(
      runtime=cfg.RuntimeConfig(mixed_precision_dtype='float32'),
      task=task,
      trainer=_trainer(train_steps=1000, learning_rate=0.08,
                       validation_steps=-1),
      restrictions=['task.train_data.is_training != None'])


@exp_factory.register_config_factory('shapes_maskrcnn')
def shapes_maskrcnn() -> cfg.ExperimentConfig:
  """Mask R-CNN (boxes and masks: configs/shapes/maskrcnn.yaml, the
  Copy-Paste pipeline; the demo and the grid train shapes_fasterrcnn)."""
  return _detector(include_mask=True)


@exp_factory.register_config_factory('shapes_fasterrcnn')
def shapes_fasterrcnn() -> cfg.ExperimentConfig:
  """Box-only Faster (or, with a cascade capacity, Cascade) R-CNN: the
  paper's Table 1 detectors, which report box AP (the grid's detector)."""
  return _detector(include_mask=False)


@exp_factory.register_config_factory('shapes_vit_classification')
def shapes_vit_classification() -> cfg.ExperimentConfig:
  """shapes_classification with the plain ViT (vit_backbone)."""
  return _classification(vit_backbone())


@exp_factory.register_config_factory('shapes_vit_fasterrcnn')
def shapes_vit_fasterrcnn() -> cfg.ExperimentConfig:
  """shapes_fasterrcnn with the plain ViT and ViTDet's simple feature
  pyramid over its one level (levels 3-5, 64 filters, as the FPN's)."""
  params = _detector(include_mask=False, backbone_config=vit_backbone())
  params.task.model.decoder = detection.Decoder(
      type='simple_fpn', simple_fpn=detection.SimpleFPN(num_filters=64))
  return params
