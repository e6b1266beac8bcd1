"""`python -m backbone_reuse.reproduce`: every manifest entry plans a train
command and params.yaml; stage 2 waits for stage 1; a tiny entry runs."""
import os
import shlex

import pytest
import tensorflow as tf
import yaml

import testing_utils
from backbone_reuse import errors
from backbone_reuse import reproduce
from backbone_reuse.configs import resolve


def _run(*flags):
  return testing_utils.run_module('backbone_reuse.reproduce', *flags)


def _flag_values(command: str, name: str):
  return [a.split('=', 1)[1] for a in shlex.split(command)
          if a.startswith(f'--{name}=')]


class ReproduceTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_every_entry_dry_runs_to_the_printed_command(self):
    entries = reproduce.load_manifest()
    # (How many entries there are is held once, by test_configs.)
    directory = self.get_temp_dir()
    for entry_id, entry in entries.items():
      model_dir = os.path.join(directory, entry_id)
      plan = reproduce.plan(entry, model_dir)
      command = plan.command()
      # The printed train command resolves to exactly the planned params.
      (experiment,) = _flag_values(command, 'experiment')
      self.assertEqual(experiment, entry['experiment'])
      self.assertEqual(_flag_values(command, 'config_file'),
                       entry['config_files'])
      overrides = _flag_values(command, 'params_override')
      again = resolve.experiment_config(
          experiment, _flag_values(command, 'config_file'),
          overrides[0] if overrides else '', root=str(testing_utils.REPO))
      self.assertEqual(again.as_dict(), plan.params.as_dict(), msg=entry_id)
      problems, _ = reproduce.problems_before_training(entries, plan)
      report = reproduce.dry_run(plan, problems, 0.0)
      self.assertIn(f'{model_dir}/params.yaml written', report)
      with open(os.path.join(model_dir, 'params.yaml')) as f:
        written = yaml.safe_load(f)
      self.assertEqual(written['task']['backbone_strategy'],
                       plan.params.task.backbone_strategy)
      self.assertEqual(written['trainer']['train_steps'],
                       plan.params.trainer.train_steps)
      if entry.get('depends_on'):
        self.assertIn(f"is stage 2 of {entry['depends_on']!r}", report)

  def test_flags_replace_checkpoint_data_dir_and_add_tpu(self):
    entry = reproduce.load_manifest()['table4/lvis/effb7_nasfpn/freeze/stage1']
    plan = reproduce.plan(entry, '/runs/x', init_checkpoint='/ckpt/b7',
                          data_dir='/data/lvis', tpu='my-tpu')
    task = plan.params.task
    self.assertEqual(task.init_checkpoint, '/ckpt/b7')
    self.assertEqual(task.train_data.input_path, '/data/lvis/train*')
    self.assertEqual(task.validation_data.input_path, '/data/lvis/val*')
    self.assertEqual(task.annotation_file, '/data/lvis/lvis_v1_val.json')
    self.assertEqual(task.class_balanced_loss.annotation_file,
                     '/data/lvis/lvis_v1_train.json')
    self.assertEqual(plan.params.runtime.distribution_strategy, 'tpu')
    self.assertTrue(plan.command().endswith('--tpu=my-tpu'))

  @pytest.mark.slow
  def test_stage2_waits_for_the_final_stage1_checkpoint(self):
    entries = reproduce.load_manifest()
    stage2 = entries['table4/lvis/effb7_nasfpn/freeze/stage2']
    final = reproduce.plan(entries[stage2['depends_on']],
                           '/unused').params.trainer.train_steps
    directory = os.path.join(self.get_temp_dir(), 'stage1')
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=tf.Variable(1)), directory, max_to_keep=2)
    manager.save(checkpoint_number=final - 1000)
    plan = reproduce.plan(stage2, '/unused', init_checkpoint=directory)
    (problem,) = reproduce.check_stage1(entries, plan)
    self.assertIn(f'final checkpoint (step {final}); found step '
                  f'{final - 1000}', problem)
    final_path = manager.save(checkpoint_number=final)
    self.assertEqual(reproduce.check_stage1(entries, plan), [])
    # The final checkpoint given as a prefix, not a directory.
    prefix_plan = reproduce.plan(stage2, '/unused', init_checkpoint=final_path)
    self.assertEqual(reproduce.check_stage1(entries, prefix_plan), [])

    result = _run(f"--entry={stage2['id']}",
                  f"--model_dir={self.get_temp_dir()}/stage2",
                  f'--init_checkpoint={self.get_temp_dir()}/nothing')
    self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE)
    lines = testing_utils.error_lines(result)
    self.assertIn(f"is stage 2 of {stage2['depends_on']!r}", lines[0])
    self.assertIn('found none', lines[0])

  @pytest.mark.slow
  def test_list_and_unknown_entries(self):
    result = _run('--entry=list')
    self.assertEqual(result.returncode, 0, msg=result.stderr[-2000:])
    lines = result.stdout.splitlines()
    self.assertLen(lines, 2 + len(reproduce.load_manifest()))
    self.assertEqual(lines[2], '| table1/r101_fpn/scratch | Table 1 | '
                     'ResNet-101 + FPN \\| From scratch | box_ap 48.4, '
                     'box_ap50 70.1 |')
    result = _run('--entry=table1/r101_fpn/scrach', '--model_dir=/tmp/x')
    self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE)
    self.assertIn("error: --entry='table1/r101_fpn/scrach' is not in "
                  "paper_tables.yaml; closest: ['table1/r101_fpn/scratch'",
                  result.stderr)

  @pytest.mark.slow
  def test_tiny_entry_trains_and_reports_against_the_paper(self):
    data = testing_utils.toy_data()
    model_dir = os.path.join(self.get_temp_dir(), 'table1', 'r101_fpn',
                             'scratch')
    result = _run('--entry=table1/r101_fpn/scratch', f'--model_dir={model_dir}',
                  '--config_file=configs/smoke/rcnn_tiny.yaml',
                  f"--params_override=task.train_data.input_path="
                  f"{data['train']},task.validation_data.input_path="
                  f"{data['val']},task.annotation_file="
                  f"{data['val_annotations']}")
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    self.assertIn('--config_file=configs/smoke/rcnn_tiny.yaml',
                  result.stdout.splitlines()[0])
    self.assertEqual(tf.train.latest_checkpoint(model_dir),
                     os.path.join(model_dir, 'ckpt-6'))
    with open(os.path.join(model_dir, 'params.yaml')) as f:
      written = yaml.safe_load(f)
    self.assertEqual(written['task']['model']['backbone']['resnet'][
        'model_id'], 18)  # The smoke YAML came after the entry's.

    table = testing_utils.run_module('backbone_reuse.tools.paper_table',
                                     f'--runs_dir={self.get_temp_dir()}')
    self.assertEqual(table.returncode, 0, msg=table.stderr[-2000:])
    with open(os.path.join(model_dir, 'metrics.json')) as f:
      box_ap = 100 * yaml.safe_load(f)['metrics']['AP']
    self.assertIn('| table1/r101_fpn/scratch | ResNet-101 + FPN \\| From '
                  f'scratch | box_ap | {box_ap:.1f} | 48.4 | '
                  f'{box_ap - 48.4:+.1f} |', table.stdout)
    self.assertIn('| table1/r101_fpn/imagenet_freeze | ResNet-101 + FPN \\| '
                  'ImageNet + Freeze backbone | box_ap | not run | 42.1 | - |',
                  table.stdout)


if __name__ == '__main__':
  tf.test.main()
