"""The committed records of the grid and its studies: one small JSON per
finished run, kept with its config key, so that a run is trained again only
when what it computes changed (on any machine)."""
import json
import os
from typing import Dict, Optional


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically (a reader never sees half): the one
  writer of the grid's records, stage markers and report files."""
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)


def write_json(path: str, value, indent: int = 1,
               sort_keys: bool = True) -> None:
  """`value` as JSON, atomically (write_text)."""
  write_text(path, json.dumps(value, indent=indent, sort_keys=sort_keys))


class RecordStore:
  """DIRECTORY/NAME.json records, each carrying the `key` it was made with."""

  def __init__(self, directory: str):
    self.directory = directory

  def path(self, name: str) -> str:
    return os.path.join(self.directory, f'{name}.json')

  def committed(self, name: str, key: str) -> Optional[Dict]:
    """The record of `name` if it was made with `key`, else None."""
    path = self.path(name)
    if not os.path.isfile(path):
      return None
    with open(path) as f:
      record = json.load(f)
    return record if record.get('key') == key else None

  def commit(self, name: str, record: Dict) -> None:
    os.makedirs(self.directory, exist_ok=True)
    write_json(self.path(name), record)
