"""Reading TFRecord shards to the end: which are whole, which are corrupt.

The library behind `python -m backbone_reuse.tools.verify_data` (its CLI),
preflight, the training error that points at a corrupt shard, and the Shapes
data stages.
"""
import dataclasses
from typing import List, Optional

import tensorflow as tf


@dataclasses.dataclass
class Shard:
  path: str
  records: int  # Read before the end, or before the corruption.
  error: Optional[str] = None  # The reader's first line; None: intact.


def joined_pattern(input_path) -> str:
  """A data config's `input_path` (a string or a list of them) as one
  comma-separated pattern string."""
  return input_path if isinstance(input_path, str) else ','.join(input_path)


def shards(input_path: str) -> List[str]:
  """Files of a comma-separated list of globs (as Model Garden's
  `input_path`); ValueError naming a pattern that matches nothing."""
  files = []
  for pattern in (p.strip() for p in input_path.split(',') if p.strip()):
    matched = tf.io.gfile.glob(pattern)
    if not matched:
      raise ValueError(f'pattern {pattern!r} matches no file.')
    files.extend(sorted(matched))
  if not files:
    raise ValueError(f'{input_path!r} names no pattern.')
  return files


# A TFRecord is framed as: length (8 bytes), its CRC (4), data, data CRC (4).
_FRAME_BYTES = 16


def read_shard(path: str) -> Shard:
  """Counts the records of one shard, stopping at the first bad one.

  A shard is intact only if its whole records consume every byte of it:
  TensorFlow's reader ends silently at a record header cut short (e.g. a
  copy interrupted a few bytes into a record), so the bytes are counted too.
  """
  count = 0
  consumed = 0
  try:
    for record in tf.data.TFRecordDataset(path):
      count += 1
      consumed += _FRAME_BYTES + len(record.numpy())
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
    return Shard(path, count, error.message.strip().splitlines()[0])
  size = tf.io.gfile.stat(path).length
  if consumed != size:
    return Shard(path, count, f'{size - consumed} trailing byte(s) are not a '
                 f'whole record (the shard is {size} bytes, its {count} '
                 f'records {consumed}): truncated?')
  return Shard(path, count)


def report_line(shard: Shard) -> str:
  if shard.error is None:
    return f'ok {shard.path}: {shard.records} records'
  return (f'CORRUPT {shard.path}: {shard.records} records readable, then: '
          f'{shard.error}')


def command_for(input_path: str) -> str:
  """The command that checks `input_path` (what error messages suggest)."""
  return f'python -m backbone_reuse.tools.verify_data --input_path={input_path}'
