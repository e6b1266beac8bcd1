"""The long schedule L is chosen by convergence on the dev split only, and
the headline is judged at L on val with seeds added while it needs them."""
import dataclasses
import os
from unittest import mock

import tensorflow as tf

from backbone_reuse.analysis import intervals
from backbone_reuse.shapes import claims
from backbone_reuse.shapes import design
from backbone_reuse.shapes import figures
from backbone_reuse.shapes import grid_runner
from backbone_reuse.shapes import long_schedule

_STEPS = (3000, 6000, 12000)


def _record(strategy, steps, seed, dev_ap, val_ap=0.5):
  return {'run': {'capacity': 'nasfpn_cascade', 'strategy': strategy,
                  'upstream': 'large', 'seed': seed, 'steps': steps},
          'name': f'nasfpn_cascade_{strategy}_large_s{seed}_{steps}steps',
          'results': {'box': {'AP': val_ap}},
          'dev': {'identity': {'seed': 1000}, 'box': {'AP': dev_ap}}}


def _pilot(dev, val=None):
  """dev / val: {(strategy, steps): [AP of seed 3, AP of seed 4]}."""
  return [_record(strategy, steps, seed, aps[i],
                  (val or {}).get((strategy, steps), [0.5, 0.5])[i])
          for (strategy, steps), aps in dev.items()
          for i, seed in enumerate((3, 4))]


def _choose(records):
  return long_schedule.choose(records, 'nasfpn_cascade', _STEPS, (3, 4))


class LongScheduleTest(tf.test.TestCase):

  def test_l_is_the_first_doubling_that_adds_under_one_ap_on_dev(self):
    # On dev: 3000 -> 6000 adds 3 AP to freeze; 6000 -> 12000 adds 0.5
    # (freeze) and 0.9 (finetune). On val 3000 would look converged.
    dev = {('freeze', 3000): [0.60, 0.62], ('freeze', 6000): [0.63, 0.65],
           ('freeze', 12000): [0.635, 0.655],
           ('finetune', 3000): [0.61, 0.61], ('finetune', 6000): [0.615,
                                                                  0.615],
           ('finetune', 12000): [0.624, 0.624]}
    val = {key: [0.5, 0.5] for key in dev}
    choice = _choose(_pilot(dev, val))
    self.assertEqual(choice['L'], 6000)
    self.assertTrue(choice['converged'])
    self.assertEqual(choice['seeds'], [3, 4])
    self.assertEmpty(choice['missing'])
    self.assertAllClose(choice['dev_box_ap']['freeze'][3000], 61.0)
    self.assertAllClose(choice['doubling_gain']['freeze']['3000->6000'], 3.0)
    self.assertAllClose(choice['doubling_gain']['finetune']['6000->12000'],
                        0.9)
    self.assertIn('L = 6000 steps', long_schedule.describe(choice))

  def test_the_longest_is_l_and_says_it_is_unconverged(self):
    dev = {(s, n): [0.1 * n / 3000, 0.1 * n / 3000]
           for s in ('freeze', 'finetune') for n in _STEPS}
    choice = _choose(_pilot(dev))
    self.assertEqual(choice['L'], 12000)
    self.assertFalse(choice['converged'])
    self.assertIn('not converged there: doubling from 6000 still added '
                  'freeze +20.0, finetune +20.0',
                  long_schedule.describe(choice))

  def test_undecided_while_a_pilot_run_lacks_a_dev_score(self):
    dev = {(s, n): [0.6, 0.6] for s in ('freeze', 'finetune')
           for n in _STEPS}
    records = _pilot(dev)
    del records[-1]['dev']  # finetune 12000 s4: val only.
    choice = _choose(records)
    self.assertIsNone(choice['L'])
    self.assertEqual(choice['missing'],
                     ['nasfpn_cascade_finetune_large_s4_12000steps'])
    self.assertEqual(choice['seeds'], [3])  # Means over complete seeds.
    self.assertIn('1 pilot run(s) have no dev score',
                  long_schedule.describe(choice))

  def test_other_runs_are_not_read(self):
    dev = {(s, n): [0.6, 0.6] for s in ('freeze', 'finetune')
           for n in _STEPS}
    records = _pilot(dev)
    others = []
    for field, value in (('capacity', 'fpn'), ('upstream', 'small'),
                         ('frozen_stages', 3)):
      other = _record('freeze', 3000, 3, 0.99)
      other['run'] = dict(other['run'], **{field: value})
      others.append(other)
    # Read after the pilot's, each would replace its seed-3 freeze record.
    choice = _choose(records + others)
    self.assertAllClose(choice['dev_box_ap']['freeze'][3000], 60.0)

  def test_a_doubling_that_adds_exactly_one_ap_is_not_converged(self):
    dev = {(s, n): [0.60 + 0.01 * _STEPS.index(n)] * 2
           for s in ('freeze', 'finetune') for n in _STEPS}
    choice = _choose(_pilot(dev))
    self.assertAllClose(choice['doubling_gain']['freeze']['3000->6000'], 1.0)
    self.assertEqual(choice['L'], 12000)
    self.assertFalse(choice['converged'])

  def test_seeds_whose_runs_started_from_several_upstreams_are_named(self):
    dev = {(s, n): [0.6, 0.6] for s in ('freeze', 'finetune')
           for n in _STEPS}
    records = _pilot(dev)
    for record in records:
      record['upstream_checkpoint'] = f"u{record['run']['seed']}"
    self.assertEmpty(_choose(records)['seeds_with_several_upstreams'])
    records[-1]['upstream_checkpoint'] = 'retrained'  # finetune 12000 s4
    self.assertEqual(_choose(records)['seeds_with_several_upstreams'], [4])

  def test_steps_that_do_not_double_are_refused(self):
    with self.assertRaisesRegex(ValueError, 'each must double'):
      long_schedule.choose([], 'nasfpn_cascade', (3000, 5000), (3,))

  def test_drift_table_lists_each_measured_run(self):
    record = _record('finetune', 3000, 3, 0.6)
    record['backbone_drift'] = {
        'distance': {'group1': 0.2, 'stem': 0.1},  # As records sort them.
        'upstream_top1': 0.5, 'upstream_top1_of_upstream': 0.9}
    text = long_schedule.drift_table([record, _record('freeze', 3000, 3,
                                                      0.6)])
    self.assertIn('| run | stem | group1 |', text)
    self.assertIn('| nasfpn_cascade_finetune_large_s3_3000steps | 0.100 | '
                  '0.200 | 0.900 -> 0.500 |', text)
    self.assertEqual(text.count('\n'), 2)  # Header, rule, one run.
    self.assertIsNone(long_schedule.drift_table([]))


  def test_val_ap_by_steps_reads_the_later_record_of_a_run_met_twice(self):
    grid = [_record('freeze', None, 0, 0.5, val_ap=0.40),
            _record('finetune', None, 0, 0.5, val_ap=0.30),
            _record('freeze', 3000, 3, 0.5, val_ap=0.60)]
    pilot = [_record('freeze', 3000, 3, 0.5, val_ap=0.62),
             _record('freeze', 12000, 3, 0.5, val_ap=0.64),
             _record('freeze', 12000, 4, 0.5, val_ap=0.66)]
    other = _record('freeze', 12000, 5, 0.5, val_ap=0.99)
    other['run']['frozen_stages'] = 1  # Partial freezing: not read.
    points = long_schedule.val_ap_by_steps(grid + pilot + [other],
                                           'nasfpn_cascade', 1500)
    self.assertAllClose(points['freeze'], {1500: {0: 40.0}, 3000: {3: 62.0},
                                           12000: {3: 64.0, 4: 66.0}})
    self.assertAllClose(points['finetune'], {1500: {0: 30.0}})
    table = long_schedule.steps_table(points)
    self.assertIn('| freeze | 40.0 (1) | 62.0 (1) | 65.0 (2) |', table)
    self.assertIn('| finetune | 30.0 (1) | — | — |', table)
    path = os.path.join(self.get_temp_dir(), 'schedule.png')
    figures.schedule_figure(points, 'title', path)
    self.assertGreater(os.path.getsize(path), 1000)


class HeadlineAtLTest(tf.test.TestCase):

  def test_claims_at_one_schedule_read_only_its_runs(self):
    val = {('freeze', 12000): [0.60, 0.62], ('finetune', 12000): [0.70, 0.75],
           ('freeze', 3000): [0.9, 0.9], ('finetune', 3000): [0.1, 0.1]}
    records = _pilot({key: [0.5, 0.5] for key in val}, val)
    for record in records:  # The rare-classes claim reads these.
      record['results']['box'].update(APr=0.5, APf=0.5)
    for steps, expected in ((12000, [-10.0, -13.0]), (3000, [80.0, 80.0])):
      found = {c['claim']: c for c in claims.at_steps(records, steps)}
      headline = found[claims.CLAIMS[0]['claim']]
      self.assertEqual(headline['seeds'], [3, 4])
      self.assertAllClose(headline['differences'], expected)
      # A claim comparing two schedules finds no cells at one schedule.
      self.assertNotIn(claims.CLAIMS[8]['claim'], found)
    self.assertEmpty(claims.at_steps(records, 6000))

  def test_headline_runs_pair_per_seed_freeze_first(self):
    runs = design.SCALES['default'].headline(12000, (5, 6))
    self.assertEqual([(r.seed, r.strategy) for r in runs],
                     [(5, 'freeze'), (5, 'finetune'), (6, 'freeze'),
                      (6, 'finetune')])
    for run in runs:
      self.assertEqual((run.capacity, run.upstream, run.steps),
                       ('nasfpn_cascade', 'large', 12000))

  def _headline(self, verdicts, **scale_changes):
    """Runs run_headline with training replaced: `verdicts` are the
    (verdict, seeds_needed) the claim has after each round. Returns the
    runs trained, in order."""
    scale = dataclasses.replace(design.SCALES['quick'],
                                headline_seeds=(0, 1),
                                headline_more_seeds=(2, 3), **scale_changes)
    grid = grid_runner.ShapesGrid(os.path.join(self.get_temp_dir(), 'out'), scale,
                                  os.path.join(self.get_temp_dir(), 'report'))
    trained, rounds = [], iter(verdicts)
    def claim(_):
      verdict, needed = next(rounds)
      seeds = sorted({run.seed for run in trained})
      return {'verdict': verdict, 'seeds_needed': needed, 'seeds': seeds}
    with mock.patch.object(grid, 'long_schedule', return_value={'L': 12}), \
         mock.patch.object(grid, 'pilot_records', return_value=[]), \
         mock.patch.object(grid, 'has_long_record', return_value=True), \
         mock.patch.object(grid, 'write_long_schedule'), \
         mock.patch.object(grid, 'detector',
                           side_effect=lambda run, *_, **__: trained.append(
                               run)), \
         mock.patch.object(grid, 'headline_claim', side_effect=claim):
      grid.run_headline()
    self.assertTrue(all(run.steps == 12 for run in trained))
    return trained

  def _seeds(self, verdicts):
    return list(dict.fromkeys(run.seed for run in self._headline(verdicts)))

  def test_the_other_table1_claims_train_after_the_headline(self):
    trained = self._headline([(intervals.CONTRADICTED, 2)],
                             at_long_fpn_seeds=(5,), at_long_small_seeds=(6,))
    self.assertEqual(
        [(r.capacity, r.upstream, r.seed, r.strategy) for r in trained],
        [('fpn', 'large', 0, 'freeze'), ('fpn', 'large', 0, 'finetune'),
         ('fpn', 'large', 1, 'freeze'), ('fpn', 'large', 1, 'finetune'),
         ('fpn', 'large', 5, 'freeze'), ('fpn', 'large', 5, 'finetune'),
         ('fpn', 'small', 6, 'freeze'), ('fpn', 'small', 6, 'finetune')])
    # The default scale: FPN for the capacity claim, the pilot's Cascade
    # R-CNN NAS-FPN with the small upstream for the upstream-size claim.
    runs = design.SCALES['default'].after_headline(12000)
    self.assertEqual({(r.capacity, r.upstream) for r in runs},
                     {('fpn', 'large'), ('nasfpn_cascade', 'small')})
    self.assertEqual(len(runs), 12)

  def test_the_headline_adds_a_seed_while_it_needs_more(self):
    undecided = intervals.INCONCLUSIVE
    # Up to the last seed it may use.
    self.assertEqual(self._seeds([(undecided, 6)] * 3), [0, 1, 2, 3])
    # Needs 3 with 3: stops before seed 3.
    self.assertEqual(self._seeds([(undecided, 5), (undecided, 3)]),
                     [0, 1, 2])
    # Decided, or not decidable at its spread (None): no seed is added.
    self.assertEqual(self._seeds([(intervals.CONTRADICTED, 2)]), [0, 1])
    self.assertEqual(self._seeds([(undecided, None)]), [0, 1])

  def test_the_headline_refuses_before_l_is_chosen(self):
    grid = grid_runner.ShapesGrid(os.path.join(self.get_temp_dir(), 'out'),
                                  design.SCALES['quick'],
                                  os.path.join(self.get_temp_dir(), 'report'))
    with mock.patch.object(grid, 'pilot_records', return_value=[]):
      with self.assertRaisesRegex(ValueError, 'run the pilot first'):
        grid.run_headline()


if __name__ == '__main__':
  tf.test.main()
