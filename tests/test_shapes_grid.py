"""The Shapes grid: its quick mode end to end, resuming from committed
records, and the report writer on fixed records."""
import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

import testing_utils

from backbone_reuse.shapes import claims as shapes_claims
from backbone_reuse.shapes import design as shapes_design
from backbone_reuse.shapes import grid_runner
from backbone_reuse.shapes import figures as shapes_figures
from backbone_reuse.shapes import report as shapes_report
from backbone_reuse.shapes import tables as shapes_tables

_FPN = 'Faster R-CNN FPN'
_CASCADE = 'Cascade R-CNN NAS-FPN'


def _record(capacity, strategy, upstream, ap, per_class, seed=0,
            step=0.5, rss=2048.0, flops=4e9, tf_peak=512.0, apr=None,
            apf=None, steps=None):
  box = dict(AP=ap, AP50=ap + 0.2, APr=ap - 0.1 if apr is None else apr,
             APc=ap, APf=ap + 0.1 if apf is None else apf,
             per_class=per_class)
  return {
      'run': {'capacity': capacity, 'strategy': strategy,
              'upstream': upstream, 'seed': seed, 'steps': steps},
      'name': f'{capacity}_{strategy}_{upstream}_s{seed}' + (
          f'_{steps}steps' if steps else ''),
      'results': {'box': box},
      'curve': [],
      'seconds': 30.0,
      'parameters': {'total_params': 4_000_000,
                     'trainable_params': (1_000_000 if strategy == 'freeze'
                                          else 3_000_000)},
      'resources': {'median_step_seconds': step, 'peak_rss_mb': rss,
                    'tf_peak_memory_mb': {'/device:CPU:0': tf_peak}},
      'flops_per_step': {'total': flops},
      'batch_size': 8,
  }


def _fixed_records():
  """FPN with every strategy and upstream; Cascade finetune and freeze with
  three seeds."""
  records = [
      _record('fpn', 'scratch', None, 0.10, {'a': 0.1, 'b': 0.3}),
      _record('fpn', 'finetune', 'large', 0.20, {'a': 0.2, 'b': 0.4},
              step=0.5, rss=2048.0, flops=6e9),
      _record('fpn', 'freeze', 'large', 0.25, {'a': 0.4, 'b': 0.4},
              step=0.4, rss=1024.0, flops=3e9, tf_peak=256.0),
      _record('fpn', 'finetune', 'small', 0.15, {'a': 0.1, 'b': 0.2},
              flops=6e9),
      _record('fpn', 'freeze', 'small', 0.12, {'a': 0.1, 'b': 0.2},
              flops=3e9),
  ]
  # Per seed, freeze - finetune = +2.0, +2.5, +2.0 AP; on APr +4, +6, +5
  # and on APf +1 each.
  for seed, (finetune, freeze) in enumerate(
      [(0.30, 0.32), (0.31, 0.335), (0.29, 0.31)]):
    records.append(_record('nasfpn_cascade', 'finetune', 'large', finetune,
                           {'a': 0.3, 'b': 0.5}, seed=seed, apr=0.10,
                           apf=0.40))
    records.append(_record('nasfpn_cascade', 'freeze', 'large', freeze,
                           {'a': 0.3, 'b': 0.5}, seed=seed,
                           apr=(0.14, 0.16, 0.15)[seed], apf=0.41))
  return records


def _context():
  return {'command': 'python -m x',
          'scale': {'detection_train': 1, 'detection_val': 1,
                    'detector_steps': 1, 'upstream_steps': 1},
          'machine': {'cpus': 2, 'processor': 'x86_64', 'memory_gb': 24,
                      'python': '3.11', 'tensorflow': '2.20'},
          'this_invocation_seconds': 180.0,
          'data_seconds': 15.0,
          'upstream': [
              {'upstream': 'large', 'seed': 1, 'images': 10, 'top1': 0.93,
               'seconds': 15.0},
              {'upstream': 'large', 'seed': 0, 'images': 10, 'top1': 0.91,
               'seconds': 15.0},
              {'upstream': 'small', 'seed': 0, 'images': 2, 'top1': 0.6,
               'seconds': 15.0}],
          'annotations': {'a': {'instances': 3, 'frequency': 'r'},
                          'b': {'instances': 40, 'frequency': 'f'}}}


class ReportWriterTest(tf.test.TestCase):

  def test_table1_numbers(self):
    lines = shapes_tables.table1(_fixed_records(), 'box', 'AP').splitlines()
    self.assertIn(f'| {_FPN} | small | 10.0 | 15.0 | 12.0 | -3.0 |', lines)
    self.assertIn(f'| {_FPN} | large | 10.0 | 20.0 | 25.0 | +5.0 |', lines)
    # Three seeds: mean and range; the mean of the per-seed differences.
    self.assertIn(f'| {_CASCADE} | large | — | 30.0 (29.0–31.0, n=3) | '
                  '32.2 (31.0–33.5, n=3) | +2.2 |', lines)
    # No NAS-FPN record: no NAS-FPN row.
    self.assertNotIn('| Faster R-CNN NAS-FPN |', '\n'.join(lines))

  def test_differences_pair_by_seed(self):
    # Adapters on seeds 0-1 only: adapters - freeze leaves out freeze's seed 2
    # (+1.06 and +0.56 AP: +0.81; the difference of the means would be +1.39).
    records = _fixed_records() + [
        _record('nasfpn_cascade', 'adapters', 'large', ap, {'a': 0.3},
                seed=seed) for seed, ap in ((0, 0.3306), (1, 0.3406))]
    lines = shapes_tables.table1(records, 'box', 'AP').splitlines()
    self.assertIn(f'| {_CASCADE} | large | — | 30.0 (29.0–31.0, n=3) | '
                  '32.2 (31.0–33.5, n=3) | +2.2 | 33.6 (33.1–34.1, n=2) | '
                  '+0.8 |', lines)
    self.assertIn(f'- Adapters ({_CASCADE}, large upstream): adapters − '
                  'freeze box AP = +0.8.',
                  '\n'.join(shapes_report.findings(records)))

  def test_table3_numbers(self):
    lines = shapes_tables.table3(_fixed_records()).splitlines()
    self.assertIn(f'| {_FPN} | finetune | 4.00 | 3.00 | 75.0 | 6.0 | 0.500 | '
                  '0.50 | 2.00 |', lines)
    # Medians over both upstreams: steps 0.4 and 0.5, RSS 1 and 2 GB.
    self.assertIn(f'| {_FPN} | freeze | 4.00 | 1.00 | 25.0 | 3.0 | 0.450 | '
                  '0.38 | 1.50 |', lines)

  def test_relative_per_class(self):
    records = _fixed_records()
    curves = shapes_figures.relative_per_class(
        {'freeze': [records[2]], 'scratch': [records[0]]}, [records[1]],
        {'a': 3, 'b': 40})
    self.assertAllClose(np.array(curves['freeze']), [[3, 20.0], [40, 0.0]])
    self.assertAllClose(np.array(curves['scratch']), [[3, -10.0], [40, -10.0]])

  def test_claims_pair_by_seed_with_a_hand_computed_interval(self):
    found = shapes_claims.claims(_fixed_records())

    def claim(start):
      (match,) = [c for c in found if c['claim'].startswith(start)]
      return match

    cascade = claim('With enough capacity')
    self.assertEqual(cascade['seeds'], [0, 1, 2])
    self.assertAllClose(cascade['differences'], [2.0, 2.5, 2.0])
    # Mean 2.1667, sd 0.288675, t(0.975, 2 df) 4.302653: half 0.717109.
    self.assertAllClose(cascade['difference_mean'], 2.166667, atol=1e-6)
    self.assertAllClose(cascade['interval'], [1.449558, 2.883776], atol=1e-6)
    self.assertEqual(cascade['verdict'], 'reproduced')
    # APr gains +4, +6, +5 minus APf gains +1: 3, 5, 4; mean 4, sd 1, half
    # 4.302653 / sqrt(3) = 2.484138.
    rare = claim('Freezing helps rare classes most')
    self.assertAllClose(rare['differences'], [3.0, 5.0, 4.0])
    self.assertAllClose(rare['interval'], [1.515862, 6.484138], atol=1e-6)
    # FPN has one seed: no interval, inconclusive.
    fpn = claim('With an FPN')
    self.assertAllClose(fpn['differences'], [5.0])
    self.assertEqual((fpn['interval'], fpn['verdict']), (None, 'inconclusive'))
    # The capacity claim needs FPN and Cascade of the same seed: seed 0.
    self.assertEqual(claim('The gain from freezing grows')['seeds'], [0])
    # No adapters, scratch or small-upstream Cascade runs: those claims are
    # absent.
    self.assertLen(found, 4)
    self.assertEmpty([c for c in found if c['claim'].startswith(
        ('Residual adapters', 'A larger upstream', 'Pre-trained'))])

  def test_partial_freezing_cells_claims_and_table(self):
    # Per seed partial3 - freeze = +1.0, +2.0, +1.5; partial3 - finetune =
    # +3.0, +4.5, +3.5; no partial1 runs: its claims are absent.
    records = _fixed_records()
    for seed, ap in enumerate((0.33, 0.355, 0.325)):
      record = _record('nasfpn_cascade', 'partial', 'large', ap, {'a': 0.3},
                       seed=seed)
      record['run']['frozen_stages'] = 3
      records.append(record)
    found = {c['claim']: c for c in shapes_claims.claims(records)}
    beats_freeze = found['Partial freezing (the stem and block groups 1-3 '
                         'frozen) beats full freezing (Cascade R-CNN '
                         'NAS-FPN, large upstream)']
    self.assertAllClose(beats_freeze['differences'], [1.0, 2.0, 1.5])
    self.assertEqual(beats_freeze['verdict'], 'reproduced')
    beats_finetune = found['Partial freezing (the stem and block groups 1-3 '
                           'frozen) beats fine-tuning (Cascade R-CNN NAS-FPN, '
                           'large upstream)']
    self.assertAllClose(beats_finetune['differences'], [3.0, 4.5, 3.5])
    self.assertEqual(beats_finetune['paper_values'], {})
    self.assertEmpty([c for c in found if 'block group 1 frozen' in c])
    # Only rows whose cells all exist: partial1 has none, so no table row.
    self.assertEqual(shapes_tables.partial_table(records).splitlines()[2:],
                     [])
    for seed, ap in enumerate((0.30, 0.30, 0.30)):
      record = _record('nasfpn_cascade', 'partial', 'large', ap, {'a': 0.3},
                       seed=seed)
      record['run']['frozen_stages'] = 1
      records.append(record)
    self.assertEqual(
        shapes_tables.partial_table(records).splitlines(),
        ['| detector | seeds | finetune | partial1 | partial3 | freeze |',
         '|---|---|---|---|---|---|',
         f'| {_CASCADE} | 0, 1, 2 | 30.0 (29.0–31.0, n=3) | '
         '30.0 (30.0–30.0, n=3) | 33.7 (32.5–35.5, n=3) | '
         '32.2 (31.0–33.5, n=3) |'])
    self.assertIn(f'| {_CASCADE} | partial3 |',
                  shapes_tables.table3(records))

  def test_learning_curves(self):
    records = _fixed_records()[1:3]
    for record, aps in zip(records, ([0.1, 0.3, 0.395, 0.4], [0.2, 0.3,
                                                             0.35, 0.372])):
      record['curve'] = [{'step': step, 'box': {'AP': ap}}
                         for step, ap in zip((300, 550, 800, 1000), aps)]
    lines = shapes_tables.learning_curves(records).splitlines()
    self.assertEqual(lines[0], '| detector | strategy | step 300 | step 550 | '
                     'step 800 | step 1000 | last interval adds |')
    self.assertIn(f'| {_FPN} | finetune | 10.0 | 30.0 | 39.5 | 40.0 | +0.5 |',
                  lines)
    self.assertIn(f'| {_FPN} | freeze | 20.0 | 30.0 | 35.0 | 37.2 | +2.2 |',
                  lines)

  def test_the_claims_at_l_come_first_and_are_in_summary_json(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report_at_l')
    at_l = [dict(r, run=dict(r['run'], steps=12000))
            for r in _fixed_records()]
    context = dict(_context(), long_schedule={
        'L': 12000, 'converged': None, 'missing': [], 'rule': 'a rule'},
                   claims_at_long=shapes_claims.at_steps(at_l, 12000))
    shapes_report.write_report(_fixed_records(), context, report_dir)
    with open(os.path.join(report_dir, 'README.md')) as f:
      text = f.read()
    at_long = text.index('### At the long schedule L = 12,000 steps')
    at_grid = text.index("### At the grid's schedule")
    self.assertLess(at_long, at_grid)
    self.assertIn('| With enough capacity (Cascade R-CNN NAS-FPN, large '
                  'upstream), freezing beats fine-tuning | 12,000 |',
                  text[at_long:at_grid])
    with open(os.path.join(report_dir, 'summary.json')) as f:
      summary = json.load(f)
    self.assertEqual(summary['long_schedule']['L'], 12000)
    self.assertNotEmpty(summary['claims_at_long'])
    self.assertEqual([c['claim'] for c in summary['claims_at_long']],
                     [c['claim'] for c in context['claims_at_long']])
    self.assertTrue(all(c['steps'] == [12000]
                        for c in summary['claims_at_long']))

  def test_summary_json_and_every_artefact(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report')
    shapes_report.write_report(_fixed_records(), _context(), report_dir)
    for name in ('table1.md', 'table3.md', 'figure1.png', 'figure4.png',
                 'README.md', 'summary.json'):
      self.assertGreater(os.path.getsize(os.path.join(report_dir, name)), 0)
    with open(os.path.join(report_dir, 'summary.json')) as f:
      summary = json.load(f)
    # 11 runs x 30 s + 3 upstreams x 15 s + the world's 15 s.
    self.assertAllClose(summary['wall_minutes'], 6.5)
    self.assertEqual(summary['upstream'], {'small': [0.6],
                                           'large': [0.91, 0.93]})
    cell = [c for c in summary['cells']
            if c['capacity'] == 'nasfpn_cascade' and c['strategy'] == 'freeze']
    self.assertEqual(cell, [{'capacity': 'nasfpn_cascade',
                             'strategy': 'freeze', 'upstream': 'large',
                             'steps': 1, 'seeds': [0, 1, 2],
                             'box_ap': [0.32, 0.335, 0.31],
                             'box_apr': [0.14, 0.16, 0.15]}])
    # The headline claim, by hand from the fixed records: per seed freeze -
    # finetune = +2.0, +2.5, +2.0 (x 100), mean 13/6, sd 0.2887; Student's
    # t with 2 degrees of freedom, 4.3027 x 0.2887 / sqrt(3) = 0.7171.
    (headline,) = [c for c in summary['claims']
                   if c['claim'].startswith('With enough capacity')]
    self.assertEqual(headline['seeds'], [0, 1, 2])
    self.assertAllClose(headline['differences'], [2.0, 2.5, 2.0])
    self.assertAllClose(headline['difference_mean'], 13 / 6)
    self.assertAllClose(headline['interval'], [13 / 6 - 0.7171,
                                               13 / 6 + 0.7171], atol=1e-4)
    self.assertEqual(headline['verdict'], 'reproduced')
    # Table 1: 51.8 - 51.1 (ImageNet), 52.8 - 51.1 (JFT-300M).
    self.assertEqual(headline['paper_values'],
                     {'ImageNet': 0.7, 'JFT-300M': 1.7})
    for claim in summary['claims']:
      self.assertEqual(set(claim), {'claim', 'paper', 'paper_values',
                                    'seeds', 'differences',
                                    'difference_mean', 'interval',
                                    'expected_sign', 'verdict',
                                    'seeds_needed', 'upstream_mismatch',
                                    'steps'})
    self.assertEqual(headline['steps'], [None])  # The grid's schedule.
    with open(os.path.join(report_dir, 'README.md')) as f:
      readme = f.read()
    self.assertIn('Wall time of all stages: 6.5 min (generating the world, 3 '
                  'upstream and 11 detector runs', readme)
    self.assertIn('| +2.0, +2.5, +2.0 | +2.2 | [+1.4, +2.9] | reproduced |',
                  readme)


class GridTest(tf.test.TestCase):

  def test_refuses_a_bad_cell(self):
    with self.assertRaisesRegex(ValueError, r"capacity='bifpn'; accepted: "
                                r'fpn, nasfpn, nasfpn_cascade'):
      shapes_design.Run('bifpn', 'freeze', 'large')
    with self.assertRaisesRegex(ValueError, 'scratch takes no upstream'):
      shapes_design.Run('fpn', 'scratch', 'large')

  def test_the_default_grid_pairs_its_runs_and_keeps_its_order(self):
    # Properties of the design, not its seeds re-typed: each would break a
    # claim or the committed records if it failed.
    runs = shapes_design.SCALES['default'].grid()
    names = [r.name for r in runs]
    self.assertLen(set(names), len(names))
    seeds = {}
    for run in runs:
      seeds.setdefault((run.capacity, run.strategy_label, run.upstream,
                        run.steps), []).append(run.seed)
    for (capacity, label, upstream, steps), found in seeds.items():
      where = f'{capacity} {label} {upstream} {steps}'
      # Every cell has seeds for an interval, each seed once.
      self.assertGreaterEqual(len(found), 2, msg=where)
      self.assertLen(set(found), len(found), msg=where)
      # Freeze and finetune pair by seed in every (capacity, upstream,
      # schedule); every other pre-trained strategy's seeds have both.
      if label == 'finetune':
        self.assertEqual(found, seeds.get(
            (capacity, 'freeze', upstream, steps)), msg=where)
      elif upstream is not None:
        for reference in ('freeze', 'finetune'):
          self.assertContainsSubset(found, seeds.get(
              (capacity, reference, upstream, None), []), msg=where)
      # A longer-schedule cell has grid-schedule twins on its seeds, on
      # both upstreams (its claims subtract them).
      if steps is not None:
        for size in ('large', 'small'):
          self.assertContainsSubset(found, seeds.get(
              (capacity, label, size, None), []), msg=where)
    # Every claim's cells exist with common seeds for an interval (two; how
    # many each claim needs is the report's seeds_needed).
    cells = {(c, l, u, shapes_claims.LONG if s else shapes_claims.DEFAULT):
             set(found) for (c, l, u, s), found in seeds.items()}
    for claim in shapes_claims.CLAIMS:
      common = set.intersection(*(cells.get(term.cell, set())
                                  for term in claim['terms']))
      self.assertGreaterEqual(len(common), 2, msg=claim['claim'])
    # Order: the cells added later (adapters, then partial freezing) come
    # last, each part seed by seed, so that the runs of one upstream
    # checkpoint train one after another.
    later = {'adapters': 1, 'partial': 2}
    parts = [later.get(r.strategy, 0) for r in runs]
    self.assertEqual(parts, sorted(parts))
    for part in set(parts):
      order = [r.seed for r, p in zip(runs, parts) if p == part]
      self.assertEqual(order, sorted(order), msg=f'part {part}')

  def test_a_partial_run_names_its_k_and_sets_it(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report')
    grid = grid_runner.ShapesGrid(self.get_temp_dir(),
                                  shapes_design.SCALES['default'], report_dir)
    one, three = (shapes_design.Run('nasfpn_cascade', 'partial', 'large', 2,
                                  frozen_stages=k) for k in (1, 3))
    self.assertEqual(three.name, 'nasfpn_cascade_partial3_large_s2')
    task = grid.training(three).params().task
    self.assertEqual((task.backbone_strategy, task.frozen_stages),
                     ('partial', 3))
    self.assertEqual(grid.training(one).params().task.frozen_stages, 1)
    self.assertEqual(task.init_checkpoint,
                     grid.path(grid.upstream_name('large', 2)))
    self.assertNotEqual(grid.key(one), grid.key(three))
    # The other strategies keep frozen_stages unset.
    freeze = shapes_design.Run('nasfpn_cascade', 'freeze', 'large', 2)
    self.assertEqual(grid.training(freeze).params().task.frozen_stages, -1)
    with self.assertRaisesRegex(ValueError, 'partial with frozen_stages='
                                'None: partial takes the number'):
      shapes_design.Run('fpn', 'partial', 'large')
    with self.assertRaisesRegex(ValueError, 'freeze with frozen_stages=2'):
      shapes_design.Run('fpn', 'freeze', 'large', frozen_stages=2)

  def test_a_long_run_has_its_own_name_steps_and_key(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report')
    grid = grid_runner.ShapesGrid(self.get_temp_dir(),
                                  shapes_design.SCALES['default'], report_dir)
    short = shapes_design.Run('nasfpn_cascade', 'freeze', 'large', 3)
    long = shapes_design.Run('nasfpn_cascade', 'freeze', 'large', 3, 3000)
    self.assertEqual(long.name, 'nasfpn_cascade_freeze_large_s3_3000steps')
    trainer = grid.training(long).params().trainer
    self.assertEqual(trainer.train_steps, 3000)
    # The schedule anneals over the long run.
    self.assertEqual(
        trainer.optimizer_config.learning_rate.cosine.decay_steps, 3000)
    self.assertEqual(grid.training(short).params().trainer.train_steps, 1500)
    self.assertNotEqual(grid.key(short), grid.key(long))
    with self.assertRaisesRegex(ValueError, 'steps=0; accepted: a positive'):
      shapes_design.Run('fpn', 'freeze', 'large', 0, 0)

  def test_the_schedule_pilot_pairs_every_step_count_on_its_seeds(self):
    scale = shapes_design.SCALES['default']
    pilot = scale.pilot()
    cells = {(r.seed, r.steps, r.strategy) for r in pilot}
    self.assertLen(cells, len(pilot))
    self.assertEqual(cells, {(seed, steps, strategy)
                             for seed in scale.pilot_seeds
                             for steps in scale.pilot_steps
                             for strategy in ('finetune', 'freeze')})
    for run in pilot:
      self.assertEqual((run.capacity, run.upstream),
                       ('nasfpn_cascade', 'large'))
    # Per seed, shortest first, each freeze/finetune pair together.
    self.assertEqual([(r.seed, r.steps) for r in pilot],
                     sorted((r.seed, r.steps) for r in pilot))
    for freeze, finetune in zip(pilot[::2], pilot[1::2]):
      self.assertEqual((freeze.strategy, finetune.strategy),
                       ('freeze', 'finetune'))
      self.assertEqual((freeze.seed, freeze.steps),
                       (finetune.seed, finetune.steps))

  def test_every_committed_grid_run_keeps_its_key(self):
    report_dir = os.path.join(testing_utils.REPO, 'experiments', 'shapes',
                              'report')
    grid = grid_runner.ShapesGrid(self.get_temp_dir(),
                                  shapes_design.SCALES['default'], report_dir)
    missing = [run.name for run in grid.scale.grid()
               if not grid.committed(run.name, grid.key(run))]
    self.assertEmpty(missing)

  def test_a_long_run_resumes_from_checkpoints_without_a_new_key(self):
    # A committed record keeps its key although its run now checkpoints
    # every RESUME_EVERY steps (so a stopped machine loses little).
    report_dir = os.path.join(testing_utils.REPO, 'experiments', 'shapes', 'report')
    grid = grid_runner.ShapesGrid(self.get_temp_dir(),
                                  shapes_design.SCALES['default'], report_dir)
    run = shapes_design.Run('nasfpn_cascade', 'freeze', 'large', 3, 3000)
    trainer = grid.training(run).params().trainer
    self.assertEqual(trainer.checkpoint_interval, grid_runner.RESUME_EVERY)
    self.assertLess(trainer.checkpoint_interval, trainer.train_steps)
    self.assertIsNotNone(grid.committed(run.name, grid.key(run)))

  def test_precision_is_part_of_every_name_and_key(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report')
    scale = shapes_design.SCALES['default']
    float32 = grid_runner.ShapesGrid(self.get_temp_dir(), scale, report_dir)
    bfloat16 = grid_runner.ShapesGrid(
        self.get_temp_dir(), dataclasses.replace(scale, precision='bfloat16'),
        report_dir)
    run32, run16 = float32.scale.grid()[0], bfloat16.scale.grid()[0]
    # float32 names are the names committed before precision was a choice.
    self.assertEqual(run32.name, 'fpn_finetune_large_s0')
    self.assertEqual(run16.name, 'fpn_finetune_large_s0_bfloat16')
    self.assertEqual(bfloat16.upstream_name('large', 0),
                     'upstream_large_s0_bfloat16')
    self.assertNotEqual(float32.key(run32), bfloat16.key(run16))
    self.assertNotEqual(float32.upstream_key('large', 0),
                        bfloat16.upstream_key('large', 0))
    for grid, dtype in ((float32, 'float32'), (bfloat16, 'bfloat16')):
      self.assertEqual(grid.training(grid.scale.grid()[0]).params()
                       .runtime.mixed_precision_dtype, dtype)
      self.assertEqual(grid.upstream_training('large', 0).params()
                       .runtime.mixed_precision_dtype, dtype)
    with self.assertRaisesRegex(ValueError, "precision='fp16'; accepted"):
      shapes_design.Run('fpn', 'freeze', 'large', 0, precision='fp16')

  def test_detector_learning_rate_sets_the_schedule_and_the_identity(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report')
    scale = shapes_design.SCALES['default']
    run = shapes_design.Run('fpn', 'freeze', 'large', 0)
    default = grid_runner.ShapesGrid(self.get_temp_dir(), scale, report_dir)
    faster = grid_runner.ShapesGrid(
        self.get_temp_dir(),
        dataclasses.replace(scale, detector_learning_rate=0.16), report_dir)
    optimizer = faster.training(run).params().trainer.optimizer_config
    self.assertEqual(optimizer.learning_rate.cosine.initial_learning_rate,
                     0.16)
    self.assertAlmostEqual(optimizer.warmup.linear.warmup_learning_rate,
                           0.016)
    self.assertEqual(optimizer.learning_rate.cosine.decay_steps,
                     scale.detector_steps)
    self.assertEqual(default.training(run).params().trainer.optimizer_config
                     .learning_rate.cosine.initial_learning_rate, 0.08)
    self.assertNotEqual(default.key(run), faster.key(run))

  @pytest.mark.slow
  def test_schedule_flags_refuse_what_is_not_positive(self):
    output_dir = os.path.join(self.get_temp_dir(), 'refused')
    for flag in ('--detector_steps=0', '--detector_learning_rate=-0.1'):
      result = subprocess.run(
          [sys.executable, '-m', 'backbone_reuse.shapes.grid', flag,
           f'--output_dir={output_dir}'],
          capture_output=True, text=True, check=False,
          timeout=120)  # Were it not refused, the grid would run for hours.
      self.assertEqual(result.returncode, 2, msg=result.stderr[-2000:])
      self.assertIn(f'error: {flag}; accepted: a positive number',
                    result.stderr)
      # Refused before anything is generated or trained.
      self.assertFalse(os.path.exists(output_dir))


def _quiet(function, *args, **kwargs):
  """Calls `function`; returns (its result, what it printed)."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = function(*args, **kwargs)
  return result, out.getvalue()


@pytest.mark.slow
class QuickGridTest(tf.test.TestCase):
  """The grid's quick mode, run once for the class (data, two upstreams,
  four runs); each scenario works on copies of what it would change."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.output_dir = os.path.join(cls.root, 'grid')
    cls.report_dir = os.path.join(cls.root, 'report')
    cls.scale = shapes_design.SCALES['quick']
    cls.result, cls.printed = _quiet(grid_runner.ShapesGrid(
        cls.output_dir, cls.scale, cls.report_dir, 'python -m quick').run)
    cls.records = cls.result['records']

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def _copy(self, directory: str) -> str:
    """A copy of the class's `directory` for a scenario that changes it."""
    copy = os.path.join(self.get_temp_dir(), os.path.basename(directory))
    shutil.copytree(directory, copy)
    return copy

  def test_every_run_trains_from_its_seeds_upstream(self):
    self.assertIn('[4/4 fpn_freeze_large_s1] finished in', self.printed)
    records = self.records
    self.assertEqual([r['name'] for r in records],
                     ['fpn_finetune_large_s0', 'fpn_freeze_large_s0',
                      'fpn_finetune_large_s1', 'fpn_freeze_large_s1'])
    for record in records:
      self.assertLen(record['results']['box']['per_class'], 40)
      self.assertNotIn('mask', record['results'])  # Box-only detectors.
      self.assertGreater(record['resources']['median_step_seconds'], 0)
      run_dir = os.path.join(self.output_dir, 'runs', record['name'])
      with open(os.path.join(run_dir, 'command.txt')) as f:
        command = f.read()
      self.assertIn('--experiment=shapes_fasterrcnn', command)
      self.assertIn(f"--seed={record['run']['seed']}", command)
      # Each seed's runs start from that seed's upstream.
      with open(os.path.join(run_dir, 'params.yaml')) as f:
        self.assertIn(f"upstream_large_s{record['run']['seed']}", f.read())
    finetune, freeze = records[:2]
    # A seed's runs started from one upstream checkpoint; another seed's
    # upstream is another checkpoint.
    self.assertEqual(finetune['upstream_checkpoint'],
                     freeze['upstream_checkpoint'])
    self.assertNotEqual(finetune['upstream_checkpoint'],
                        records[2]['upstream_checkpoint'])
    self.assertLess(freeze['parameters']['trainable_params'],
                    finetune['parameters']['trainable_params'])
    self.assertLess(freeze['flops_per_step']['backward'],
                    finetune['flops_per_step']['backward'])

  def test_the_report_pairs_by_seed_and_counts_the_wall_time(self):
    records = self.records
    with open(os.path.join(self.report_dir, 'summary.json')) as f:
      summary = json.load(f)
    self.assertLen(summary['upstream']['large'], 2)
    (fpn_claim,) = summary['claims']
    self.assertEqual(fpn_claim['seeds'], [0, 1])
    self.assertAllClose(fpn_claim['differences'], [
        100 * (records[i + 1]['results']['box']['AP'] -
               records[i]['results']['box']['AP']) for i in (0, 2)])
    self.assertLen(fpn_claim['interval'], 2)
    # Wall time: the world's generation, the upstreams and the runs.
    with open(os.path.join(self.report_dir, 'runs', 'data.json')) as f:
      data_seconds = json.load(f)['seconds']
    upstream_seconds = sum(u['seconds']
                           for u in self.result['context']['upstream'])
    self.assertGreater(data_seconds, 0)
    self.assertAllClose(summary['wall_minutes'], (
        data_seconds + upstream_seconds +
        sum(r['seconds'] for r in records)) / 60)

  def test_a_fresh_clone_reports_the_committed_records_untrained(self):
    # Another output dir, the committed records only: nothing is generated
    # or trained, and the same records are reported.
    report_dir = self._copy(self.report_dir)
    again, printed = _quiet(grid_runner.ShapesGrid(
        os.path.join(self.get_temp_dir(), 'fresh'), self.scale,
        report_dir).run)
    self.assertEqual(printed.count('committed result reused'), 4)
    self.assertNotIn('[data]', printed)
    self.assertEqual(again['records'], self.records)

  def test_report_only_names_and_leaves_out_runs_without_records(self):
    more = dataclasses.replace(self.scale, large_seeds={'fpn': (0, 1, 2)})
    fresh = os.path.join(self.get_temp_dir(), 'report_only')
    reported, printed = _quiet(grid_runner.ShapesGrid(
        fresh, more, self._copy(self.report_dir)).run, report_only=True)
    self.assertIn('2 of 6 runs have no committed record and are left out: '
                  'fpn_finetune_large_s2, fpn_freeze_large_s2', printed)
    self.assertEqual(reported['records'], self.records)
    self.assertFalse(os.path.exists(os.path.join(fresh, 'runs')))

  def test_a_changed_schedule_is_not_taken_for_the_committed_run(self):
    grid = grid_runner.ShapesGrid(self.output_dir, self.scale,
                                  self.report_dir)
    changed = grid_runner.ShapesGrid(
        self.output_dir, dataclasses.replace(self.scale, detector_steps=12),
        self.report_dir)
    run = self.scale.grid()[0]
    self.assertIsNotNone(grid.committed(run.name, grid.key(run)))
    self.assertIsNone(changed.committed(run.name, changed.key(run)))

  def test_the_learning_curve_retrains_seed_zero_at_each_quarter(self):
    # The records have no curve: the seed-0 runs are trained again and
    # evaluated at each quarter of the 8 steps.
    report_dir = self._copy(self.report_dir)
    curve, _ = _quiet(grid_runner.ShapesGrid(
        self._copy(self.output_dir), self.scale, report_dir).run, curve=True)
    self.assertEqual([r['name'] for r in curve['records']],
                     ['fpn_finetune_large_s0', 'fpn_freeze_large_s0'])
    for record in curve['records']:
      self.assertEqual([point['step'] for point in record['curve']],
                       [2, 4, 6, 8])
    self.assertTrue(os.path.isfile(os.path.join(report_dir, 'curve.md')))

  def test_the_pilot_scores_on_dev_and_rescores_a_run_on_disk(self):
    # The world and the seed-0 upstream are the class's (copied): the pilot
    # generates and pretrains nothing.
    output_dir = self._copy(self.output_dir)
    report_dir = os.path.join(self.get_temp_dir(), 'pilot_report')
    scale = self.scale
    records, printed = _quiet(grid_runner.ShapesGrid(
        output_dir, scale, report_dir).run_pilot)
    self.assertIn('[upstream_large_s0] done in an earlier run', printed)
    self.assertIn('[data] done in an earlier run', printed)
    self.assertEqual([r['name'] for r in records],
                     ['fpn_freeze_large_s0_12steps',
                      'fpn_finetune_large_s0_12steps'])
    freeze, finetune = records
    for record in records:
      self.assertEqual(record['dev']['identity']['images'], scale.dev_images)
      self.assertEqual(set(record['dev']['box']),
                       {'AP', 'AP50', 'APr', 'APc', 'APf'})
    # A frozen backbone has not moved and classifies as its upstream does;
    # a fine-tuned one has moved in every block group.
    drift = freeze['backbone_drift']
    self.assertEqual(set(drift['distance'].values()), {0.0})
    self.assertEqual(drift['upstream_top1'], drift['upstream_top1_of_upstream'])
    self.assertTrue(all(d > 0 for d in
                        finetune['backbone_drift']['distance'].values()))
    # Each landed run rewrites long_schedule.md: with both pilot runs scored
    # on dev, L is chosen (the quick pilot's one step count).
    with open(os.path.join(report_dir, 'long_schedule.md')) as f:
      written = f.read()
    self.assertIn('L = 12 steps, the only piloted schedule', written)
    self.assertIn('| fpn_finetune_large_s0_12steps |', written)
    # A committed record without its dev score (e.g. made before the pilot)
    # is scored from the run on disk, not trained again.
    store = grid_runner.ShapesGrid(output_dir, scale, report_dir).pilot_store
    self.assertEqual(store.directory,
                     os.path.join(report_dir, 'long_schedule', 'runs'))
    # The grid's own records are not the pilot's.
    self.assertFalse(os.path.exists(os.path.join(report_dir, 'runs',
                                                 f"{freeze['name']}.json")))
    path = store.path(freeze['name'])
    with open(path) as f:
      stripped = json.load(f)
    del stripped['dev']
    store.commit(freeze['name'], stripped)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      again = grid_runner.ShapesGrid(output_dir, scale,
                                     report_dir).run_pilot()
    self.assertIn('done in an earlier run', out.getvalue())
    self.assertNotIn('train and evaluate ...', out.getvalue())
    self.assertEqual(again[0]['dev'], freeze['dev'])
    self.assertEqual(again[1], finetune)
    # Everything committed: nothing is generated or trained.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      grid_runner.ShapesGrid(os.path.join(self.get_temp_dir(), 'fresh'),
                             scale, report_dir).run_pilot()
    self.assertNotIn('[data]', out.getvalue())
    self.assertFalse(os.path.exists(os.path.join(self.get_temp_dir(),
                                                 'fresh', 'data')))


if __name__ == '__main__':
  tf.test.main()
