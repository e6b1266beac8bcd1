"""Resumable stages: skip work whose verified result is on disk, else redo it.

The demo and the Shapes grid are sequences of stages, each owning a
directory. A finished stage leaves a marker (stage.json, written atomically
last); a later run skips the stage only if the marker is there AND `verify`
passes on its artefacts, so a half-written result is never reused. A stage
given an `identity` (its configuration's key) also redoes whatever an earlier
run left under another identity, finished or not.
"""
import json
import os
import shutil
import time
from typing import Callable, Dict, Optional

import tensorflow as tf

from backbone_reuse.shapes import records

MARKER = 'stage.json'
IDENTITY = 'identity.txt'  # Written when the stage starts.


def run_stage(directory: str, name: str, title: str, work: Callable[[], Dict],
              verify: Callable[[Dict], Optional[str]], resumable: bool = False,
              force: bool = False, identity: Optional[str] = None) -> Dict:
  """Runs one stage unless a verified earlier result exists.

  Args:
    directory: the stage's own directory (created; removed when redone).
    name: the stage, for the progress lines.
    title: what it does, for the progress line.
    work: computes the stage; returns its marker dict.
    verify: marker -> None if the stage's artefacts are sound, else why not.
    resumable: the stage continues from what an interrupted run left (a
      training stage resumes from its last checkpoint); others start over.
    force: an earlier stage was redone, so this one's results are stale.
    identity: what the stage computes (e.g. a config key); what an earlier
      run left in `directory` under another identity (or none) is removed.

  Returns:
    The stage's marker (with `seconds`; `skipped` if reused).
  """
  marker_path = os.path.join(directory, MARKER)
  if force and os.path.isdir(directory):
    shutil.rmtree(directory)
  if identity is not None and os.path.isdir(directory):
    earlier = _read(os.path.join(directory, IDENTITY))
    if earlier != identity:
      print(f'[{name}] earlier result was made with another configuration '
            f'({earlier or "unknown"}, now {identity}); redoing.', flush=True)
      shutil.rmtree(directory)
  if os.path.isfile(marker_path):
    try:
      with open(marker_path) as f:
        marker = json.load(f)
      problem = verify(marker)
    except Exception as e:  # pylint: disable=broad-except
      problem = f'{type(e).__name__}: {e}'
    if problem is None:
      print(f'[{name}] done in an earlier run ({marker["seconds"]:.0f}s); '
            'skipped.', flush=True)
      return dict(marker, skipped=True)
    print(f'[{name}] earlier result is unusable ({problem}); redoing.',
          flush=True)
    shutil.rmtree(directory)
  elif os.path.isdir(directory) and not resumable:
    shutil.rmtree(directory)
  _prepare(directory, identity)
  print(f'[{name}] {title} ...', flush=True)
  start = time.time()
  try:
    marker = work()
  except (tf.errors.OpError, ValueError) as e:
    if not resumable:
      raise
    # An interrupted run left a checkpoint that cannot be resumed.
    print(f'[{name}] could not resume ({type(e).__name__}); starting the '
          'stage over.', flush=True)
    shutil.rmtree(directory)
    _prepare(directory, identity)
    start = time.time()
    marker = work()
  marker['seconds'] = time.time() - start
  records.write_json(marker_path, marker, indent=2, sort_keys=False)
  print(f'[{name}] finished in {marker["seconds"]:.0f}s.', flush=True)
  return marker


def verify_checkpoint(directory: str, train_steps: int) -> Optional[str]:
  """None if DIRECTORY's latest checkpoint is the final step and readable."""
  latest = tf.train.latest_checkpoint(directory)
  if not latest:
    return 'no checkpoint'
  if not latest.endswith(f'-{train_steps}'):
    return f'latest checkpoint {latest} is not the final step'
  try:
    reader = tf.train.load_checkpoint(latest)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except (tf.errors.OpError, ValueError) as e:
    return f'checkpoint {latest} is unreadable ({type(e).__name__})'
  return None


def _prepare(directory: str, identity: Optional[str]) -> None:
  os.makedirs(directory, exist_ok=True)
  if identity is not None:
    with open(os.path.join(directory, IDENTITY), 'w') as f:
      f.write(identity)


def _read(path: str) -> Optional[str]:
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return f.read()
