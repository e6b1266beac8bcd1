r"""Our runs against the paper's numbers, one markdown table per paper table.

  python -m backbone_reuse.tools.paper_table --runs_dir=DIR
  python -m backbone_reuse.tools.paper_table --runs=ID=MODEL_DIR[,ID=DIR...]

With --runs_dir, each entry's model dir is DIR/ENTRY_ID, local or on any filesystem TensorFlow reads (as
`python -m backbone_reuse.reproduce --entry=ENTRY_ID --model_dir=DIR/ENTRY_ID`
makes it). Each paper number of experiments/paper_tables.yaml is set beside
ours -- COCO/LVIS AP from the run's metrics.json (x 100), parameter counts
from its parameters.json (millions) -- and the difference; entries without a
run are listed as not run. Prints markdown on stdout.
"""
import json
import os
from typing import Dict, List, Optional, Tuple

from absl import app
from absl import flags
import tensorflow as tf

from backbone_reuse import errors
from backbone_reuse import manifest

# Paper keys whose value is derived from other runs, not read from one.
DERIVED = ('delta_box_ap_vs_finetune',)


def _metric_name(paper_key: str) -> Optional[Tuple[str, str, float]]:
  """(file, key, scale) of a paper number in a model dir, or None."""
  parameters = {'total_params_m': ('total_params', 1e-6),
                'trained_params_m': ('trainable_params', 1e-6),
                'trained_percent': ('trainable_percent', 1.0)}
  if paper_key in parameters:
    key, scale = parameters[paper_key]
    return 'parameters.json', key, scale
  for prefix, ours in (('box_', ''), ('mask_', 'mask_')):
    if paper_key.startswith(prefix):
      suffix = paper_key[len(prefix):]  # ap, ap50, aps, apr, ...
      return 'metrics.json', ours + 'AP' + suffix[2:], 100.0
  return None


def _read(model_dir: str, filename: str) -> Optional[Dict]:
  path = os.path.join(model_dir, filename)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    content = json.load(f)
  return content.get('metrics', content) if filename == 'metrics.json' else (
      content)


def ours(model_dir: str, paper_key: str) -> Optional[float]:
  """Our number for `paper_key` from the run in `model_dir` (None: absent)."""
  found = _metric_name(paper_key)
  if found is None:
    return None
  filename, key, scale = found
  content = _read(model_dir, filename)
  if content is None or key not in content:
    return None
  return float(content[key]) * scale


def tables(entries: Dict[str, Dict], run_dirs: Dict[str, str]) -> str:
  """Markdown: per paper table, entry x paper number, ours and the
  difference."""
  by_table: Dict[str, List[Dict]] = {}
  for entry in entries.values():
    by_table.setdefault(entry['table'], []).append(entry)
  out = []
  for table, members in by_table.items():
    out += [f'## {table}', '',
            '| entry | row | number | ours | paper | ours - paper |',
            '|---|---|---|---|---|---|']
    for entry in members:
      row = entry['row'].replace('|', '\\|')
      model_dir = run_dirs.get(entry['id'])
      present = model_dir and tf.io.gfile.isdir(model_dir)
      paper = entry.get('paper') or {}
      if not paper:
        paper = {'(none: see its stage 2)' if entry['id'].endswith('stage1')
                 else '(none reported)': None}
      for key, value in paper.items():
        if not present:
          mine = 'not run'
        elif key in DERIVED:
          mine = 'derived'
        else:
          number = ours(model_dir, key) if value is not None else None
          mine = 'missing' if number is None else number
        paper_text = '-' if value is None else f'{value:g}'
        if isinstance(mine, float):
          difference = f'{mine - value:+.1f}' if value is not None else '-'
          mine = f'{mine:.1f}'
        else:
          difference = '-'
        out.append(f"| {entry['id']} | {row} | {key} | {mine} | "
                   f'{paper_text} | {difference} |')
    out.append('')
  return '\n'.join(out)


def run_dirs_from_flags(runs_dir: str, runs: str,
                        entries: Dict[str, Dict]) -> Dict[str, str]:
  """{entry id: model dir}; ValueError on an unknown id or a bad pair."""
  found = {}
  if runs_dir:
    if not tf.io.gfile.isdir(runs_dir):
      raise ValueError(f'--runs_dir={runs_dir!r}: no such directory.')
    found = {i: os.path.join(runs_dir, i) for i in entries}
  for pair in (p for p in (runs or '').split(',') if p):
    entry_id, _, model_dir = pair.partition('=')
    if not model_dir:
      raise ValueError(f'--runs item {pair!r}; accepted: ENTRY_ID=MODEL_DIR.')
    manifest.find(entries, entry_id)
    found[entry_id] = model_dir
  if not found:
    raise ValueError('give --runs_dir or --runs.')
  return found


def main(_):
  values = flags.FLAGS
  entries = manifest.load()
  try:
    run_dirs = run_dirs_from_flags(values.runs_dir, values.runs, entries)
  except ValueError as error:
    errors.report_bad_input(error)
  print(tables(entries, run_dirs))


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('runs_dir', '', 'Folder of model dirs named by entry '
                      'id.')
  flags.DEFINE_string('runs', '', 'ENTRY_ID=MODEL_DIR pairs, comma-separated '
                      '(added to / replacing --runs_dir\'s).')
  app.run(main)
