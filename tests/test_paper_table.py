"""paper_table: ours vs the paper's numbers from fixed run files."""
import json
import os

import tensorflow as tf

from backbone_reuse import reproduce
from backbone_reuse.tools import paper_table


def _write(path, content):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(content, f)


class PaperTableTest(tf.test.TestCase):

  def test_rows_from_metrics_and_parameters_files(self):
    runs = self.get_temp_dir()
    _write(os.path.join(runs, 'table1/r101_fpn/scratch/metrics.json'),
           {'step': 10, 'metrics': {'AP': 0.47, 'AP50': 0.7123}})
    _write(os.path.join(runs, 'table1/r101_fpn/imagenet_finetune/'
                              'metrics.json'), {'metrics': {'AP': 0.4}})
    _write(os.path.join(runs, 'table3/fpn/parameters.json'),
           {'total_params': 84_100_000, 'trainable_params': 21_000_000,
            'trainable_percent': 24.97})
    _write(os.path.join(runs, 'table4/coco/effb7_nasfpn_cascade/freeze/'
                              'metrics.json'),
           {'step': 1, 'metrics': {'AP': 0.5, 'mask_AP': 0.41}})
    entries = reproduce.load_manifest()
    text = paper_table.tables(
        entries, paper_table.run_dirs_from_flags(runs, '', entries))
    lines = text.splitlines()
    for expected in [
        '| table1/r101_fpn/scratch | ResNet-101 + FPN \\| From scratch | '
        'box_ap | 47.0 | 48.4 | -1.4 |',
        '| table1/r101_fpn/scratch | ResNet-101 + FPN \\| From scratch | '
        'box_ap50 | 71.2 | 70.1 | +1.1 |',
        '| table3/fpn | FPN | total_params_m | 84.1 | 83.5 | +0.6 |',
        '| table3/fpn | FPN | trained_params_m | 21.0 | 21.9 | -0.9 |',
        '| table3/fpn | FPN | trained_percent | 25.0 | 26.1 | -1.1 |',
        '| table3/fpn | FPN | delta_box_ap_vs_finetune | derived | -6.5 | - |',
        '| table4/coco/effb7_nasfpn_cascade/freeze | COCO \\| Cascade Eff-B7 '
        'NAS-FPN (1280) + freeze backbone | mask_ap | 41.0 | 47.6 | -6.6 |',
        '| table1/r101_fpn/imagenet_freeze | ResNet-101 + FPN \\| ImageNet + '
        'Freeze backbone | box_ap | not run | 42.1 | - |',
    ]:
      self.assertIn(expected, lines)
    # A run without a number the paper reports says so.
    self.assertIn('| table1/r101_fpn/imagenet_finetune | ResNet-101 + FPN '
                  '\\| ImageNet, fine-tune | box_ap50 | missing | 70.5 | - |',
                  lines)
    self.assertEqual(lines[0], '## Table 1')
    self.assertEqual(sum(l.startswith('## ') for l in lines),
                     len({e['table'] for e in entries.values()}))

  def test_run_pairs_and_their_errors(self):
    entries = reproduce.load_manifest()
    self.assertEqual(
        paper_table.run_dirs_from_flags(
            '', 'table3/fpn=/a,table3/nasfpn=/b', entries),
        {'table3/fpn': '/a', 'table3/nasfpn': '/b'})
    with self.assertRaisesRegex(ValueError, 'closest'):
      paper_table.run_dirs_from_flags('', 'table3/fpm=/a', entries)
    with self.assertRaisesRegex(ValueError, 'ENTRY_ID=MODEL_DIR'):
      paper_table.run_dirs_from_flags('', 'table3/fpn', entries)
    with self.assertRaisesRegex(ValueError, 'no such directory'):
      paper_table.run_dirs_from_flags('/no/such/dir', '', entries)


if __name__ == '__main__':
  tf.test.main()
