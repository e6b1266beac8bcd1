"""The manifest of paper rows, experiments/paper_tables.yaml: each entry is
one configuration (experiment, YAMLs, override) and the numbers the paper
reports for it. It is the one home of paper numbers; whatever prints one
reads it from here.
"""
import difflib
import fnmatch
import pathlib
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from backbone_reuse import errors
from backbone_reuse import package_data

# The checkout, or the installed package's copies (package_data.py).
REPO = package_data.root()
MANIFEST = REPO / package_data.MANIFEST
STRATEGY_DIR = 'configs/strategies/'
# A row's twin trains the backbone the other way: a frozen (or partly
# frozen, or adapted) row's twin fine-tunes; a fine-tuned or from-scratch
# row's twin freezes.
_TWIN_YAML = {'freeze': 'finetune', 'adapters': 'finetune',
              'adapters_parallel': 'finetune', 'partial': 'finetune',
              'finetune': 'freeze', 'scratch': 'freeze'}
# A from-scratch row has no checkpoint; its frozen twin is only traced
# (estimated), never restored, so any path validates.
TWIN_CHECKPOINT = 'checkpoints/twin_is_estimated_only'


def load(path: pathlib.Path = MANIFEST) -> Dict[str, Dict]:
  """{entry id: entry}, in the manifest's order."""
  with open(path) as f:
    return {entry['id']: entry for entry in yaml.safe_load(f)}


def find(entries: Dict[str, Dict], entry_id: str) -> Dict:
  """The entry `entry_id`; errors.BadInput naming the closest ids if none."""
  if entry_id in entries:
    return entries[entry_id]
  close = list(closest(entries, entry_id))
  raise errors.BadInput(f'--entry={entry_id!r} is not in {MANIFEST.name}; '
                        f'closest: {close or "none"}; --entry=list lists all '
                        f'{len(entries)}.')


def select(entries: Dict[str, Dict], pattern: str) -> List[str]:
  """Entry ids matching `pattern`: 'all', an id, or a glob ('table1/*')."""
  if pattern == 'all':
    return list(entries)
  return [entry_id for entry_id in entries
          if fnmatch.fnmatchcase(entry_id, pattern)]


def twin(entry: Dict) -> Optional[Dict]:
  """The entry with its strategy YAML swapped for the other way of training
  the backbone (`_TWIN_YAML`), or None when its YAMLs name no strategy."""
  files = list(entry['config_files'])
  for i, path in enumerate(files):
    name = path[len(STRATEGY_DIR):-len('.yaml')]
    if path.startswith(STRATEGY_DIR) and name in _TWIN_YAML:
      files[i] = f'{STRATEGY_DIR}{_TWIN_YAML[name]}.yaml'
      override = entry.get('params_override') or ''
      if name == 'scratch':
        override = ','.join(
            filter(None, [override, f'task.init_checkpoint={TWIN_CHECKPOINT}']))
      return {**entry, 'id': f'{entry["id"]}, twin',
              'config_files': files, 'params_override': override}
  return None


def closest(entries: Dict[str, Dict], entry_id: str) -> Sequence[str]:
  """Up to three entry ids that look like `entry_id` (for error messages)."""
  return difflib.get_close_matches(entry_id, list(entries), n=3, cutoff=0.5)


def paper_number(entries: Dict[str, Dict], entry_id: str, key: str) -> float:
  """The paper's `key` (e.g. box_ap) of one entry.

  Raises:
    KeyError: naming the entry or the key and what the entry has.
  """
  if entry_id not in entries:
    raise KeyError(f'{entry_id!r} is not in {MANIFEST.name}; closest: '
                   f'{list(closest(entries, entry_id)) or "none"}')
  numbers = entries[entry_id].get('paper') or {}
  if key not in numbers:
    raise KeyError(f'{entry_id!r} has no paper {key!r}; it has: '
                   f'{", ".join(numbers) or "no numbers"}')
  return numbers[key]


def paper_difference(entries: Dict[str, Dict],
                     terms: Sequence[Tuple[int, str, str]]) -> float:
  """sum(sign * number) over (sign, entry id, key) terms, e.g. a freeze row
  minus its fine-tune row."""
  return sum(sign * paper_number(entries, entry_id, key)
             for sign, entry_id, key in terms)
