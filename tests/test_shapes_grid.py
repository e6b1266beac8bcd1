"""The Shapes grid: its quick mode end to end, and the report writer."""
import contextlib
import io
import os

import numpy as np
import tensorflow as tf

from backbone_reuse.experiments import shapes_grid
from backbone_reuse.experiments import shapes_report


def _record(capacity, strategy, upstream, ap, per_class, repeat=0,
            step=0.5, rss=2048.0, flops=4e9, tf_peak=512.0):
  groups = {'APr': ap - 0.1, 'APc': ap, 'APf': ap + 0.1}
  box = dict(AP=ap, AP50=ap + 0.2, **groups, per_class=per_class)
  return {
      'run': {'capacity': capacity, 'strategy': strategy,
              'upstream': upstream, 'repeat': repeat},
      'name': f'{capacity}_{strategy}_{upstream}_r{repeat}',
      'results': {'box': box, 'mask': dict(box, AP=ap / 2)},
      'parameters': {'total_params': 4_000_000,
                     'trainable_params': (1_000_000 if strategy == 'freeze'
                                          else 3_000_000)},
      'resources': {'median_step_seconds': step, 'peak_rss_mb': rss,
                    'tf_peak_memory_mb': {'/device:CPU:0': tf_peak}},
      'flops_per_step': {'total': flops},
      'batch_size': 8,
  }


def _fixed_records():
  """FPN with every strategy and upstream; NAS-FPN + Cascade freeze twice."""
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
      _record('nasfpn_cascade', 'finetune', 'large', 0.30,
              {'a': 0.3, 'b': 0.5}),
      _record('nasfpn_cascade', 'freeze', 'large', 0.32,
              {'a': 0.3, 'b': 0.5}),
      _record('nasfpn_cascade', 'freeze', 'large', 0.36,
              {'a': 0.3, 'b': 0.5}, repeat=1),
  ]
  return records


class ReportWriterTest(tf.test.TestCase):

  def test_table1_numbers(self):
    text = shapes_report.table1(_fixed_records(), 'box', 'AP')
    lines = text.splitlines()
    self.assertIn('| FPN | small | 10.0 | 15.0 | 12.0 | -3.0 |', lines)
    self.assertIn('| FPN | large | 10.0 | 20.0 | 25.0 | +5.0 |', lines)
    # Two freeze runs: mean 34.0, range 32.0-36.0; delta from the mean.
    self.assertIn('| NAS-FPN + Cascade | large | — | 30.0 | '
                  '34.0 (32.0–36.0, n=2) | +4.0 |', lines)
    # No NAS-FPN record: no NAS-FPN row.
    self.assertNotIn('| NAS-FPN |', text)
    mask = shapes_report.table1(_fixed_records(), 'mask', 'AP')
    self.assertIn('| FPN | large | 5.0 | 10.0 | 12.5 | +2.5 |', mask.splitlines())

  def test_table1_adapters_columns(self):
    records = _fixed_records() + [
        _record('nasfpn_cascade', 'adapters', 'large', 0.37,
                {'a': 0.3, 'b': 0.5})]
    lines = shapes_report.table1(records, 'box', 'AP').splitlines()
    self.assertIn('| NAS-FPN + Cascade | large | — | 30.0 | '
                  '34.0 (32.0–36.0, n=2) | +4.0 | 37.0 | +3.0 |', lines)
    self.assertIn('| FPN | large | 10.0 | 20.0 | 25.0 | +5.0 | — | — |',
                  lines)
    text = '\n'.join(shapes_report.findings(records))
    self.assertIn('Adapters (NAS-FPN + Cascade, large upstream): adapters − '
                  'freeze box AP = +3.0', text)

  def test_table3_numbers(self):
    lines = shapes_report.table3(_fixed_records()).splitlines()
    self.assertIn('| FPN | finetune | 4.00 | 3.00 | 75.0 | 6.0 | 0.500 | '
                  '0.50 | 2.00 |', lines)
    # Medians over both upstreams: steps 0.4 and 0.5, RSS 1 and 2 GB.
    self.assertIn('| FPN | freeze | 4.00 | 1.00 | 25.0 | 3.0 | 0.450 | '
                  '0.38 | 1.50 |', lines)

  def test_relative_per_class(self):
    records = _fixed_records()
    curves = shapes_report.relative_per_class(
        {'freeze': [records[2]], 'scratch': [records[0]]}, [records[1]],
        {'a': 3, 'b': 40})
    self.assertAllClose(np.array(curves['freeze']), [[3, 20.0], [40, 0.0]])
    self.assertAllClose(np.array(curves['scratch']), [[3, -10.0], [40, -10.0]])

  def test_findings_read_the_numbers(self):
    text = '\n'.join(shapes_report.findings(_fixed_records()))
    self.assertIn('Upstream size (FPN): freeze − finetune = -3.0 (small) vs '
                  '+5.0 (large)', text)
    self.assertIn('Here: yes.', text)
    # Medians over both upstreams: step (0.4, 0.5) vs (0.5, 0.5); RSS
    # (1024, 2048) vs (2048, 2048).
    # TF peak (256, 512) vs (512, 512).
    self.assertIn('Resources (FPN): freeze / finetune = 0.90 step time, 0.75 '
                  'TF peak memory, 0.75 peak RSS, 0.50 training FLOPs per '
                  'step', text)
    self.assertIn('box AP 32.0, 36.0 (range 4.0)', text)

  def test_writes_every_artefact(self):
    report_dir = os.path.join(self.get_temp_dir(), 'report')
    context = {'command': 'python -m x', 'scale': {'detection_train': 1,
                                                   'detection_val': 1,
                                                   'detector_steps': 1,
                                                   'upstream_steps': 1},
               'machine': {'cpus': 2, 'processor': 'x86_64',
                           'memory_gb': 24, 'python': '3.11',
                           'tensorflow': '2.20'},
               'stage_seconds': {'data': 60.0, 'run': 120.0},
               'this_invocation_seconds': 180.0,
               'upstream': {'large': {'images': 10, 'accuracy': 0.5}},
               'annotations': {'a': 3, 'b': 40}}
    shapes_report.write_report(_fixed_records(), context, report_dir)
    for name in ('table1.md', 'table3.md', 'figure1.png', 'figure4.png',
                 'README.md'):
      self.assertGreater(os.path.getsize(os.path.join(report_dir, name)), 0)
    with open(os.path.join(report_dir, 'README.md')) as f:
      readme = f.read()
    self.assertIn('Wall time of all stages: 3.0 min (8 detector runs', readme)


class GridTest(tf.test.TestCase):

  def test_refuses_a_bad_cell(self):
    with self.assertRaisesRegex(ValueError, r"capacity='bifpn'; accepted: "
                                r'fpn, nasfpn, nasfpn_cascade'):
      shapes_grid.Run('bifpn', 'freeze', 'large')
    with self.assertRaisesRegex(ValueError, 'scratch takes no upstream'):
      shapes_grid.Run('fpn', 'scratch', 'large')

  def test_default_grid(self):
    runs = shapes_grid.SCALES['default'].grid()
    names = [r.name for r in runs]
    self.assertLen(set(names), len(names))
    self.assertEqual(sum(r.strategy == 'scratch' for r in runs), 3)
    # scratch per capacity, finetune/freeze per capacity and upstream, and
    # one adapters cell (most capacity, large upstream).
    self.assertEqual(sum(r.repeat == 0 for r in runs), 3 + 3 * 2 * 2 + 1)
    self.assertEqual([r.name for r in runs if r.strategy == 'adapters'],
                     ['nasfpn_cascade_adapters_large_r0'])

  def test_quick_mode_runs_resumes_and_reports(self):
    output_dir = os.path.join(self.get_temp_dir(), 'grid')
    report_dir = os.path.join(output_dir, 'report')
    grid = shapes_grid.ShapesGrid(output_dir, shapes_grid.SCALES['quick'],
                                  report_dir, 'python -m quick')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      result = grid.run()
    printed = out.getvalue()
    self.assertIn('[2/2 fpn_freeze_large_r0] finished in', printed)
    records = result['records']
    self.assertEqual([r['name'] for r in records],
                     ['fpn_finetune_large_r0', 'fpn_freeze_large_r0'])
    for record in records:
      self.assertLen(record['results']['box']['per_class'], 40)
      self.assertBetween(record['results']['box']['AP'], 0.0, 1.0)
      self.assertGreater(record['resources']['peak_rss_mb'], 100)
      self.assertGreater(record['resources']['median_step_seconds'], 0)
      run_dir = os.path.join(output_dir, 'runs', record['name'])
      with open(os.path.join(run_dir, 'command.txt')) as f:
        self.assertIn('-m backbone_reuse.train --experiment=shapes_maskrcnn',
                      f.read())
    finetune, freeze = records
    # Freezing: fewer trained parameters and no backbone backward pass.
    self.assertLess(freeze['parameters']['trainable_params'],
                    finetune['parameters']['trainable_params'])
    self.assertEqual(freeze['parameters']['total_params'],
                     finetune['parameters']['total_params'])
    # No backbone gradients when frozen: less backward work.
    flops = [r['flops_per_step'] for r in records]
    self.assertLess(flops[1]['backward'], flops[0]['backward'])
    self.assertLess(flops[1]['total'], flops[0]['total'])
    for name in ('table1.md', 'table3.md', 'figure1.png', 'figure4.png',
                 'README.md'):
      self.assertTrue(os.path.isfile(os.path.join(report_dir, name)), name)
    with open(os.path.join(report_dir, 'table1.md')) as f:
      table = f.read()
    ap = [100 * r['results']['box']['AP'] for r in records]
    self.assertIn(f'| FPN | large | — | {ap[0]:.1f} | {ap[1]:.1f} |', table)

    # A rerun redoes nothing and reports the same numbers.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      again = shapes_grid.ShapesGrid(output_dir, shapes_grid.SCALES['quick'],
                                     report_dir).run()
    self.assertEqual(out.getvalue().count('done in an earlier run'), 4)
    self.assertEqual(again['records'], records)
