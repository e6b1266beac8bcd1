"""Configs: strategy refusals, every committed YAML, the paper-table manifest."""
import pathlib
import re
import shlex

from absl.testing import parameterized
from official.core import exp_factory
from official.core import task_factory
import tensorflow as tf
import yaml

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.configs import resolve

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ('backbone_reuse_fasterrcnn_coco', 'backbone_reuse_maskrcnn_coco',
               'backbone_reuse_cascadercnn_coco',
               'backbone_reuse_retinanet_coco', 'backbone_reuse_maskrcnn_lvis')
_R101 = 'configs/coco/fasterrcnn_r101_fpn.yaml'


def _header_commands(path: pathlib.Path):
  """The `python -m backbone_reuse.train` commands in a YAML's header."""
  lines = []
  for line in path.read_text().splitlines():
    if not line.startswith('#'):
      break
    lines.append(line.lstrip('#').strip())
  text = re.sub(r'\\\s*\n\s*', ' ', '\n'.join(lines))
  return [shlex.split(l) for l in text.splitlines()
          if l.startswith('python -m backbone_reuse.train')]


def _flags(argv):
  values = {'config_file': []}
  for arg in argv[3:]:
    name, value = arg[2:].split('=', 1)
    if name == 'config_file':
      values['config_file'].append(value)
    else:
      values[name] = value
  return values


def _assert_contains(test, actual, expected, where):
  """Every leaf of the YAML made it into the resolved config."""
  for key, value in expected.items():
    test.assertIn(key, actual, msg=f'{where}: {key}')
    if isinstance(value, dict):
      _assert_contains(test, actual[key], value, f'{where}: {key}')
    elif isinstance(value, list) and isinstance(actual[key], tuple):
      test.assertEqual(list(actual[key]), value, msg=f'{where}: {key}')
    else:
      test.assertEqual(actual[key], value, msg=f'{where}: {key}')


class StrategyConfigTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(*EXPERIMENTS)
  def test_registered_experiment_validates(self, experiment):
    params = exp_factory.get_exp_config(experiment)
    params.validate()
    self.assertEqual(params.task.backbone_strategy, 'scratch')

  @parameterized.named_parameters(
      ('unknown_strategy', 'task.backbone_strategy=linear_probe',
       r"task.backbone_strategy='linear_probe' is not supported; accepted: "
       r'scratch, finetune, freeze, adapters, partial'),
      ('scratch_with_checkpoint',
       'task.backbone_strategy=scratch,task.init_checkpoint=/c/ckpt',
       r"task.init_checkpoint='/c/ckpt' contradicts "
       r"task.backbone_strategy='scratch'"),
      ('finetune_without_checkpoint', 'task.backbone_strategy=finetune',
       r"task.backbone_strategy='finetune' needs task.init_checkpoint"),
      ('freeze_without_checkpoint', 'task.backbone_strategy=freeze',
       r"task.backbone_strategy='freeze' needs task.init_checkpoint"),
      ('contradicting_freeze_backbone',
       'task.backbone_strategy=finetune,task.init_checkpoint=/c/ckpt,'
       'task.freeze_backbone=true',
       r"task.freeze_backbone=True contradicts "
       r"task.backbone_strategy='finetune'"),
      ('decoder_only_import',
       'task.backbone_strategy=freeze,task.init_checkpoint=/c/ckpt,'
       'task.init_checkpoint_modules=decoder',
       r"task.init_checkpoint_modules='decoder' is not supported; accepted: "
       r"'backbone' .* or 'all'"),
      ('stage_two_without_whole_detector',
       'task.backbone_strategy=freeze,task.init_checkpoint=/c/ckpt,'
       'task.train_only_box_classifier=true',
       r"task.train_only_box_classifier=True \(stage 2\) .* "
       r"task.init_checkpoint_modules='all'"),
      ('stochastic_depth_on_frozen',
       'task.backbone_strategy=freeze,task.init_checkpoint=/c/ckpt,'
       'task.model.backbone.resnet.stochastic_depth_drop_rate=0.1',
       r'stochastic_depth_drop_rate=0.1 would keep perturbing'),
      ('unknown_backbone_activation', 'task.model.backbone_activation=swishy',
       r"task.model.backbone_activation='swishy' is not an activation"),
      ('masks_without_mask_modules', 'task.model.include_mask=true',
       r'task.model.include_mask=True needs task.model.mask_head, '
       r'task.model.mask_sampler, task.model.mask_roi_aligner; accepted: '
       r'each set'),
      ('unknown_nasfpn_activation',
       'task.model.decoder.bottleneck_nasfpn.activation=rellu',
       r"task.model.decoder.bottleneck_nasfpn.activation='rellu' is not an "
       r'activation'),
  )
  def test_refusal_at_validation(self, override, message):
    with self.assertRaisesRegex(ValueError, message) as e:
      resolve.experiment_config('backbone_reuse_fasterrcnn_coco', [_R101],
                                override, root=str(REPO))
    self.assertLen(str(e.exception).splitlines(), 1)

  def test_task_refuses_before_building(self):
    params = exp_factory.get_exp_config('backbone_reuse_retinanet_coco')
    params.task.backbone_strategy = 'freeze'
    with self.assertRaisesRegex(ValueError, 'needs task.init_checkpoint'):
      task_factory.get_task(params.task)

  def test_consistent_freeze_backbone_is_accepted(self):
    params = resolve.experiment_config(
        'backbone_reuse_fasterrcnn_coco', [_R101],
        'task.backbone_strategy=freeze,task.init_checkpoint=/c/ckpt,'
        'task.freeze_backbone=true', root=str(REPO))
    self.assertEqual(params.task.backbone_strategy, 'freeze')

  def test_unknown_yaml_key_fails(self):
    path = pathlib.Path(self.get_temp_dir()) / 'typo.yaml'
    path.write_text('task:\n  backbone_stratgy: freeze\n')
    with self.assertRaisesRegex(KeyError, 'backbone_stratgy'):
      resolve.experiment_config('backbone_reuse_fasterrcnn_coco', [str(path)])

  def test_paper_recipe(self):
    params = resolve.experiment_config(
        'backbone_reuse_cascadercnn_coco',
        ['configs/coco/cascadercnn_r101_nasfpn.yaml',
         'configs/schedules/600_epochs.yaml'], root=str(REPO))
    model = params.task.model
    resnet = model.backbone.resnet
    self.assertEqual((resnet.model_id, resnet.se_ratio, resnet.resnetd_shortcut,
                      resnet.replace_stem_max_pool, resnet.scale_stem),
                     (101, 0.25, True, True, True))
    self.assertEqual(model.norm_activation.activation, 'swish')
    self.assertEqual(model.input_size, [1280, 1280, 3])
    self.assertEqual(model.decoder.type, 'nasfpn')
    self.assertEqual(model.roi_sampler.cascade_iou_thresholds, [0.7, 0.8])
    self.assertTrue(model.detection_head.cascade_class_ensemble)
    parser = params.task.train_data.parser
    self.assertEqual((parser.aug_scale_min, parser.aug_scale_max), (0.1, 2.0))
    self.assertEqual(params.task.train_data.global_batch_size, 64)
    # The authors' published schedule (tests/test_published_configs.py
    # holds every field): 0.16 at batch 64, 1,108,940 steps.
    lr = params.trainer.optimizer_config.learning_rate.stepwise
    self.assertEqual(lr.values[0], 0.16)
    self.assertEqual(params.trainer.train_steps, 1108940)


class CommittedConfigsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      *sorted(str(p.relative_to(REPO)) for p in REPO.glob('configs/**/*.yaml')))
  def test_yaml_header_command_resolves(self, relative_path):
    path = REPO / relative_path
    self.assertTrue(path.read_text().startswith('# Paper:') or
                    'not a paper row' in path.read_text().splitlines()[0],
                    msg='The first line names the paper table and row.')
    commands = _header_commands(path)
    self.assertNotEmpty(commands, msg='The header gives the exact command.')
    for argv in commands:
      flags = _flags(argv)
      self.assertIn(relative_path, flags['config_file'])
      for name in ('experiment', 'mode', 'model_dir'):
        self.assertIn(name, flags)
      params = resolve.experiment_config(
          flags['experiment'], flags['config_file'],
          flags.get('params_override', ''), root=str(REPO))
      _assert_contains(self, params.as_dict(),
                       yaml.safe_load(path.read_text()), relative_path)


class ManifestTest(tf.test.TestCase):

  def test_every_entry_resolves_and_validates(self):
    entries = yaml.safe_load(
        (REPO / 'experiments' / 'paper_tables.yaml').read_text())
    ids = [e['id'] for e in entries]
    # Tables 1-7, the published configs and the extensions: the one place
    # the count is typed.
    self.assertLen(ids, 83)
    self.assertLen(set(ids), len(ids))
    self.assertEqual({e['table'] for e in entries},
                     {'Table 1', 'Table 2', 'Table 3', 'Table 4', 'Table 5',
                      'Table 6', 'Table 7', 'Appendix C (72 epochs)',
                      'Published configs (no paper row)',
                      'Extensions (no paper row)'})
    for entry in entries:
      for key in ('id', 'table', 'row', 'experiment', 'config_files',
                  'init_checkpoint_hint', 'paper'):
        self.assertIn(key, entry, msg=entry['id'])
      self.assertIsInstance(entry['paper'], dict)
      for config_file in entry['config_files']:
        self.assertTrue((REPO / config_file).is_file(), msg=config_file)
      params = resolve.experiment_config(
          entry['experiment'], entry['config_files'],
          entry.get('params_override', ''), root=str(REPO))
      strategy, = [f.split('/')[-1][:-len('.yaml')]
                   for f in entry['config_files'] if '/strategies/' in f]
      self.assertEqual(params.task.backbone_strategy, strategy,
                       msg=entry['id'])
      if 'depends_on' in entry:  # Stage 2 restores the stage-1 detector.
        self.assertIn(entry['depends_on'], ids)
        self.assertTrue(params.task.train_only_box_classifier)
        self.assertEqual(params.task.init_checkpoint_modules, 'all')


if __name__ == '__main__':
  tf.test.main()
