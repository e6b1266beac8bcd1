"""Our paper rows equal the authors' published Model Garden configs.

The authors published one YAML per ResNet row (tensorflow/models,
official/projects/backbone_reuse/configs/experiments/{faster_rcnn,retinanet}/),
each applied to a Model Garden base experiment (fasterrcnn_resnetfpn_coco or
retinanet_resnetfpn_coco). Their values are written out below, as facts. Our
resolved config -- registered experiment + configs/coco + configs/schedules +
configs/strategies/freeze.yaml -- must equal base + their YAML in every field
but the deviations in ALLOWED, each justified in the YAML headers.
"""
import copy

from absl.testing import parameterized
from official.core import exp_factory
import tensorflow as tf

import testing_utils
from backbone_reuse.configs import resolve


def _resnet_rs_101():
  return {'type': 'resnet', 'resnet': {
      'model_id': 101, 'replace_stem_max_pool': True,
      'resnetd_shortcut': True, 'scale_stem': True, 'se_ratio': 0.25,
      'stem_type': 'v1'}}


def _task(model, batch):
  return {'init_checkpoint_modules': 'backbone', 'freeze_backbone': True,
          'model': model,
          'train_data': {'global_batch_size': batch, 'parser': {
              'aug_rand_hflip': True, 'aug_scale_max': 2.0,
              'aug_scale_min': 0.1}}}


def _trainer(boundaries, values, steps_per_loop, train_steps):
  return {'optimizer_config': {'learning_rate': {
      'stepwise': {'boundaries': boundaries, 'name': 'PiecewiseConstantDecay',
                   'offset': 0, 'values': values},
      'type': 'stepwise'}},
          'steps_per_loop': steps_per_loop,
          'summary_interval': steps_per_loop, 'train_steps': train_steps}


RCNN_600 = _trainer([1062734, 1090458], [0.16, 0.016, 0.0016], 1848, 1108940)
RCNN_72 = _trainer([88704, 125664], [0.16, 0.016, 0.0016], 1848, 133056)
RETINANET_600 = _trainer([265684, 272615], [0.32, 0.032, 0.0032], 462,
                         277235)
RETINANET_72 = _trainer([22176, 31416], [0.32, 0.032, 0.0032], 462, 33264)

FPN = {'backbone': _resnet_rs_101(), 'decoder': {'type': 'fpn'},
       'detection_head': {'num_fcs': 2},
       'norm_activation': {'activation': 'swish'}}
NASFPN = {'backbone': _resnet_rs_101(), 'decoder': {'type': 'nasfpn'},
          'detection_head': {'num_fcs': 2}, 'include_mask': False,
          'max_level': 7, 'min_level': 3,
          'norm_activation': {'activation': 'swish'}}
FPN_CASCADE = {'backbone': _resnet_rs_101(), 'decoder': {'type': 'fpn'},
               'detection_head': {'cascade_class_ensemble': True,
                                  'class_agnostic_bbox_pred': True,
                                  'num_fcs': 2},
               'input_size': [1280, 1280, 3],
               'norm_activation': {'activation': 'swish'},
               'roi_sampler': {'cascade_iou_thresholds': [0.7, 0.8]}}
NASFPN_CASCADE = dict(copy.deepcopy(FPN_CASCADE), decoder={'type': 'nasfpn'},
                      max_level=7, min_level=3)
RETINANET_FPN = {'backbone': _resnet_rs_101(), 'decoder': {'type': 'fpn'}}
RETINANET_NASFPN = {'backbone': _resnet_rs_101(),
                    'decoder': {'type': 'nasfpn'}}

# Published file -> (Model Garden base, their YAML, our experiment, our YAMLs).
PUBLISHED = {
    'fastrcnn_resnet101_fpn_600epochs': (
        'fasterrcnn_resnetfpn_coco', _task(FPN, 64), RCNN_600,
        'backbone_reuse_fasterrcnn_coco', 'fasterrcnn_r101_fpn', '600_epochs'),
    'fastrcnn_resnet101_fpn_72epochs': (
        'fasterrcnn_resnetfpn_coco', _task(FPN, 64), RCNN_72,
        'backbone_reuse_fasterrcnn_coco', 'fasterrcnn_r101_fpn', '72_epochs'),
    'fastrcnn_resnet101_nasfpn_600epochs': (
        'fasterrcnn_resnetfpn_coco', _task(NASFPN, 64), RCNN_600,
        'backbone_reuse_fasterrcnn_coco', 'fasterrcnn_r101_nasfpn',
        '600_epochs'),
    'fastrcnn_resnet101_nasfpn_72epochs': (
        'fasterrcnn_resnetfpn_coco', _task(NASFPN, 64), RCNN_72,
        'backbone_reuse_fasterrcnn_coco', 'fasterrcnn_r101_nasfpn',
        '72_epochs'),
    'fastrcnn_resnet101_fpn_cascade_600epochs': (
        'fasterrcnn_resnetfpn_coco', _task(FPN_CASCADE, 64), RCNN_600,
        'backbone_reuse_cascadercnn_coco', 'cascadercnn_r101_fpn',
        '600_epochs'),
    'fastrcnn_resnet101_fpn_cascade_72epochs': (
        'fasterrcnn_resnetfpn_coco', _task(FPN_CASCADE, 64), RCNN_72,
        'backbone_reuse_cascadercnn_coco', 'cascadercnn_r101_fpn',
        '72_epochs'),
    'fastrcnn_resnet101_nasfpn_cascade_600epochs': (
        'fasterrcnn_resnetfpn_coco', _task(NASFPN_CASCADE, 64), RCNN_600,
        'backbone_reuse_cascadercnn_coco', 'cascadercnn_r101_nasfpn',
        '600_epochs'),
    'fastrcnn_resnet101_nasfpn_cascade_72epochs': (
        'fasterrcnn_resnetfpn_coco', _task(NASFPN_CASCADE, 64), RCNN_72,
        'backbone_reuse_cascadercnn_coco', 'cascadercnn_r101_nasfpn',
        '72_epochs'),
    'retinanet_resnet101_fpn_600epochs': (
        'retinanet_resnetfpn_coco', _task(RETINANET_FPN, 256), RETINANET_600,
        'backbone_reuse_retinanet_coco', 'retinanet_r101_fpn',
        'retinanet_600_epochs'),
    'retinanet_resnet101_fpn_72epochs': (
        'retinanet_resnetfpn_coco', _task(RETINANET_FPN, 256), RETINANET_72,
        'backbone_reuse_retinanet_coco', 'retinanet_r101_fpn',
        'retinanet_72_epochs'),
    'retinanet_resnet101_nasfpn_600epochs': (
        'retinanet_resnetfpn_coco', _task(RETINANET_NASFPN, 256),
        RETINANET_600, 'backbone_reuse_retinanet_coco',
        'retinanet_r101_nasfpn', 'retinanet_600_epochs'),
    'retinanet_resnet101_nasfpn_72epochs': (
        'retinanet_resnetfpn_coco', _task(RETINANET_NASFPN, 256),
        RETINANET_72, 'backbone_reuse_retinanet_coco',
        'retinanet_r101_nasfpn', 'retinanet_72_epochs'),
}

# Field -> why ours differs (also stated in the YAML headers).
ALLOWED = {
    'task.freeze_backbone': 'task.backbone_strategy=freeze decides it',
    'task.init_checkpoint': 'the user\'s classification checkpoint (the '
                            'base names a ResNet-50 one)',
    'trainer.validation_interval': 'one evaluation per epoch, not every 500 '
                                   'steps',
    'trainer.checkpoint_interval': 'one checkpoint per epoch, not every 500 '
                                   'steps',
    'runtime.tpu': 'set from the --tpu flag',
}
# Fields Model Garden's configs do not have (ours only).
OURS_ONLY = ('task.backbone_strategy', 'task.frozen_stages',
             'task.class_category_ids', 'task.model.decoder.simple_fpn.',
             'task.model.decoder.bottleneck_nasfpn.',
             'task.model.backbone_activation',
             'task.adapters.',
             'task.class_balanced_loss.', 'task.train_only_box_classifier',
             'task.train_data.parser.copy_paste.',
             'task.validation_data.parser.copy_paste.',
             'task.train_data.repeat_factor_sampling.',
             'task.validation_data.repeat_factor_sampling.')


def _flat(tree, prefix=''):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = list(value) if isinstance(value, tuple) else (
          value)
  return out


class PublishedConfigsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*((name, name) for name in PUBLISHED))
  def test_equals_model_garden_base_plus_the_published_yaml(self, name):
    base, task, trainer, experiment, model, schedule = PUBLISHED[name]
    theirs = exp_factory.get_exp_config(base)
    theirs.override({'task': task, 'trainer': trainer}, is_strict=True)
    ours = resolve.experiment_config(
        experiment, [f'configs/coco/{model}.yaml',
                     f'configs/schedules/{schedule}.yaml',
                     'configs/strategies/freeze.yaml'],
        'task.init_checkpoint=/checkpoints/resnet_rs_101_imagenet',
        root=str(testing_utils.REPO))
    theirs_flat, ours_flat = _flat(theirs.as_dict()), _flat(ours.as_dict())
    differences = sorted(
        key for key in set(theirs_flat) | set(ours_flat)
        if theirs_flat.get(key, '<absent>') != ours_flat.get(key, '<absent>')
        and key not in ALLOWED and not key.startswith(OURS_ONLY))
    self.assertEqual(differences, [], msg='\n'.join(
        f'{k}: published {theirs_flat.get(k, "<absent>")!r}, ours '
        f'{ours_flat.get(k, "<absent>")!r}' for k in differences))
    # The allowed deviations are what they say.
    self.assertTrue(theirs.task.freeze_backbone)
    self.assertEqual(ours.task.backbone_strategy, 'freeze')
    self.assertEqual(ours.trainer.validation_interval,
                     trainer['steps_per_loop'])
    # The backbone's activation is the model-wide one, as in Model Garden.
    self.assertEqual(ours.task.model.backbone_activation, '')
    if base == 'retinanet_resnetfpn_coco':
      return
    # Every ours-only field is at the value that leaves Model Garden's
    # behaviour unchanged.
    self.assertFalse(ours.task.train_data.parser.copy_paste.enabled)
    self.assertEqual(ours.task.train_data.repeat_factor_sampling.threshold,
                     0.0)
    self.assertEqual(ours.task.class_balanced_loss.type, 'none')
    self.assertFalse(ours.task.train_only_box_classifier)

  def test_paper_text_learning_rate_variant(self):
    ours = resolve.experiment_config(
        'backbone_reuse_cascadercnn_coco',
        ['configs/coco/cascadercnn_r101_nasfpn.yaml',
         'configs/schedules/600_epochs.yaml',
         'configs/schedules/paper_text_lr.yaml'],
        root=str(testing_utils.REPO))
    stepwise = ours.trainer.optimizer_config.learning_rate.stepwise
    self.assertEqual(list(stepwise.values), [0.08, 0.008, 0.0008])
    self.assertEqual(list(stepwise.boundaries), [1062734, 1090458])


class GhiasiConfigsTest(tf.test.TestCase, parameterized.TestCase):
  """Table 4's COCO Eff-B7 rows and Ghiasi et al.'s published configs
  (tensorflow/tpu, projects/copy_paste/configs/cascade_maskrcnn_effb7_nasfpn
  {_vanilla,}_1280.yaml), value by value."""

  @parameterized.named_parameters(
      ('vanilla', 'configs/schedules/effb7_baseline_90k.yaml', 90000,
       [81000, 85500, 87750]),
      ('copy_paste', 'configs/schedules/copy_paste_180k.yaml', 180000,
       [162000, 171000, 175500]),
  )
  def test_cascade_effb7_nasfpn_1280(self, schedule, steps, boundaries):
    params = resolve.experiment_config(
        'backbone_reuse_cascadercnn_coco',
        ['configs/coco/cascade_maskrcnn_effb7_nasfpn.yaml', schedule],
        root=str(testing_utils.REPO))
    task, model = params.task, params.task.model
    self.assertEqual((model.backbone.type, model.backbone.efficientnet.model_id),
                     ('efficientnet', 'b7'))
    self.assertEqual((model.min_level, model.max_level), (3, 7))
    self.assertEqual(model.num_classes, 91)
    self.assertEqual(model.input_size, [1280, 1280, 3])
    self.assertEqual((model.anchor.num_scales, model.anchor.anchor_size),
                     (3, 4.0))
    nasfpn = model.decoder.bottleneck_nasfpn
    self.assertEqual((model.decoder.type, nasfpn.num_filters,
                      nasfpn.num_repeats, nasfpn.use_sum_for_combination,
                      nasfpn.drop_connect_rate),
                     ('bottleneck_nasfpn', 256, 5, True, 0.2))
    self.assertEqual((model.rpn_head.num_convs, model.rpn_head.num_filters),
                     (2, 256))
    head = model.detection_head
    self.assertEqual((head.num_convs, head.num_fcs, head.num_filters,
                      head.cascade_class_ensemble,
                      head.class_agnostic_bbox_pred),
                     (4, 2, 256, True, True))
    self.assertEqual((model.mask_head.num_convs, model.mask_head.num_filters),
                     (4, 256))
    self.assertEqual(model.roi_sampler.cascade_iou_thresholds, [0.7, 0.8])
    self.assertEqual(model.roi_sampler.foreground_iou_threshold, 0.6)
    norm = model.norm_activation
    self.assertEqual((norm.norm_epsilon, norm.norm_momentum,
                      norm.use_sync_bn), (0.0001, 0.997, True))
    # Theirs: EfficientNet's own swish, nasfpn.activation swish, and
    # batch_norm_activation.activation relu for every head.
    self.assertEqual((model.backbone_activation, nasfpn.activation,
                      norm.activation), ('swish', 'swish', 'relu'))
    parser = task.train_data.parser
    self.assertEqual((parser.aug_rand_hflip, parser.aug_scale_min,
                      parser.aug_scale_max), (True, 0.1, 2.0))
    self.assertEqual(task.losses.l2_weight_decay, 4e-05)
    self.assertEqual(task.train_data.global_batch_size, 256)
    trainer = params.trainer
    self.assertEqual(trainer.train_steps, steps)
    stepwise = trainer.optimizer_config.learning_rate.stepwise
    self.assertEqual(list(stepwise.boundaries), boundaries)
    self.assertEqual(list(stepwise.values), [0.32, 0.032, 0.0032, 0.00032])
    warmup = trainer.optimizer_config.warmup.linear
    self.assertEqual((warmup.warmup_steps, warmup.warmup_learning_rate),
                     (1000, 0.0032))


if __name__ == '__main__':
  tf.test.main()
