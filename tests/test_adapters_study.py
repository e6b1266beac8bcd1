"""The adapters study chooses on its dev split only, and its variants are the
grid's adapters cell with one thing changed."""
import json
import os

import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse.shapes import adapters_study
from backbone_reuse.shapes import design as shapes_design
from backbone_reuse.shapes import dev_split


def _record(variant, seed, dev_ap, val_ap=None):
  record = {'name': adapters_study.record_name(variant, seed),
            'variant': variant, 'seed': seed, 'split': adapters_study.DEV,
            adapters_study.DEV: {'AP': dev_ap}}
  if val_ap is not None:  # What a leak would look like.
    record['val'] = {'AP': val_ap}
  return record


class AdaptersStudyTest(tf.test.TestCase):

  def _study(self, **kwargs):
    root = self.get_temp_dir()
    return adapters_study.AdaptersStudy(
        os.path.join(root, 'out'), os.path.join(root, 'study'),
        os.path.join(root, 'report'), quick=True, **kwargs)

  def test_choice_follows_the_dev_split_not_val(self):
    records = [
        _record('freeze', 3, 0.40), _record('freeze', 4, 0.42),
        # On val the reference would win; on dev lr_x0.1 does.
        _record('adapters', 3, 0.38, val_ap=0.60),
        _record('adapters', 4, 0.36, val_ap=0.61),
        _record('lr_x0.1', 3, 0.41, val_ap=0.30),
        _record('lr_x0.1', 4, 0.43, val_ap=0.31),
        # Incomplete: one seed only, so it cannot be chosen however high.
        _record('parallel', 3, 0.90),
    ]
    found = adapters_study.summarise(records)
    self.assertEqual(found['choice']['variant'], 'lr_x0.1')
    self.assertEqual(found['choice']['adapters'],
                     {'learning_rate_multiplier': 0.1})
    self.assertAlmostEqual(found['choice']['mean_AP'], 0.42)
    rows = {r['variant']: r for r in found['rows']}
    self.assertAllClose(rows['lr_x0.1']['minus_adapters']['differences'],
                        [0.03, 0.07])
    self.assertAllClose(rows['adapters']['minus_freeze']['differences'],
                        [-0.02, -0.06])
    self.assertNotIn('minus_freeze', rows['freeze'])
    # The freeze reference is never a choice for the adapters cells.
    found = adapters_study.summarise(records[:2])
    self.assertIsNone(found['choice'])

  def test_a_record_without_dev_metrics_is_refused(self):
    leaked = {'name': 'adapters_s3', 'variant': 'adapters', 'seed': 3,
              'split': 'val', 'val': {'AP': 0.5}}
    with self.assertRaisesRegex(ValueError, r"no 'dev' metrics \(split='val'"):
      adapters_study.summarise([leaked])

  def test_runs_point_at_the_dev_split_only(self):
    study = self._study()
    val = os.path.join(study.grid.data, 'detection', 'val')
    for variant in adapters_study.VARIANTS:
      params = study.training(variant, 3).params()
      task = params.task
      self.assertEqual(task.annotation_file, study.dev.annotations())
      self.assertNotIn(val, task.validation_data.input_path)
      self.assertIn('detection_dev', task.validation_data.input_path)
      self.assertEqual(task.backbone_strategy, variant.strategy)
      for field, value in variant.adapters:
        self.assertEqual(getattr(task.adapters, field), value)

  def _cell_and_variant(self, study, variant, chosen_adapters):
    cell = study.grid.training(
        shapes_design.Run('nasfpn_cascade', 'adapters', 'large', 3),
        chosen_adapters=chosen_adapters).params().as_dict()
    ours = study.training(adapters_study.variant(variant),
                          3).params().as_dict()
    for tree in (cell, ours):
      del tree['task']['annotation_file']
      del tree['task']['validation_data']['input_path']
    return cell, ours

  def test_the_reference_is_the_grid_cell_at_the_strategy_defaults(self):
    # Apart from where it is scored, the reference variant computes exactly
    # what the grid's adapters cell does without the study's choice.
    cell, ours = self._cell_and_variant(self._study(), 'adapters', False)
    self.assertEqual(cell, ours)

  def test_the_grid_cell_is_the_committed_choice(self):
    # configs/shapes/adapters.yaml is the variant the committed study chose
    # on its dev split: the grid's adapters cell computes exactly what that
    # variant did, and nothing else.
    with open(os.path.join(testing_utils.REPO, 'experiments', 'shapes',
                           'adapters_study', 'summary.json')) as f:
      choice = json.load(f)['choice']
    self.assertIsNotNone(choice)
    cell, ours = self._cell_and_variant(self._study(), choice['variant'],
                                        True)
    self.assertEqual(cell, ours)
    self.assertEqual(adapters_study.variant(choice['variant']).adapters,
                     tuple(choice['adapters'].items()))
    default, _ = self._cell_and_variant(self._study(), 'adapters', False)
    self.assertNotEqual(cell, default)

  def test_every_committed_record_keeps_its_key(self):
    # The committed study resumes: each record's key is the one its run
    # would have now (at the default scale, outside any machine's paths).
    root = self.get_temp_dir()
    study = adapters_study.AdaptersStudy(
        os.path.join(root, 'out'), os.path.join(root, 'study'),
        os.path.join(root, 'report'))
    runs_dir = os.path.join(testing_utils.REPO, 'experiments', 'shapes',
                            'adapters_study', 'runs')
    names = sorted(os.listdir(runs_dir))
    self.assertNotEmpty(names)
    for name in names:
      with open(os.path.join(runs_dir, name)) as f:
        record = json.load(f)
      self.assertEqual(
          study.key(adapters_study.variant(record['variant']),
                    record['seed']), record['key'], name)

  def test_keys_name_what_a_run_computes(self):
    study = self._study()
    keys = {(v.name, s): study.key(v, s)
            for v in adapters_study.VARIANTS for s in (3, 4)}
    self.assertLen(set(keys.values()), len(keys))
    again = self._study()
    self.assertEqual(again.key(adapters_study.variant('he_init'), 4),
                     keys[('he_init', 4)])

  @pytest.mark.slow
  def test_dev_split_is_another_draw_with_disjoint_ids(self):
    study = self._study()
    study.grid.make_data()
    study.dev.make()
    with open(study.dev.annotations()) as f:
      dev = json.load(f)
    with open(os.path.join(study.grid.data, 'detection', 'val',
                           'annotations.json')) as f:
      val = json.load(f)
    dev_ids = {i['id'] for i in dev['images']}
    self.assertLen(dev_ids, shapes_design.SCALES['quick'].dev_images)
    self.assertEmpty(dev_ids & {i['id'] for i in val['images']})
    self.assertEqual(dev['info']['seed'], dev_split.SEED)
    # Same categories and frequency groups as the grid's world.
    self.assertEqual([(c['id'], c['frequency']) for c in dev['categories']],
                     [(c['id'], c['frequency']) for c in val['categories']])
    self.assertIsNone(study.dev.verify({'identity': study.dev.identity}))
    self.assertTrue(tf.io.gfile.glob(study.dev.input_path()))

  def test_unknown_variant_is_refused(self):
    with self.assertRaisesRegex(ValueError, r"variant='bottleneck'; accepted: "
                                'freeze, adapters, '):
      self._study(variants=('bottleneck',))


if __name__ == '__main__':
  tf.test.main()
