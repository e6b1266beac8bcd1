r"""Checks for a defect that favours fine-tuning (issue 39, item 5), on the
long-schedule pairs the grid trained.

  python experiments/shapes_pair_checks.py --output_dir=/work/runs_grid \
      [--steps=12000] [--output=experiments/shapes/report/pair_checks.md]

For every seed whose freeze and finetune runs at --steps are on disk
(OUTPUT_DIR/long_schedule/NAME) with their upstream checkpoint, it reads
the runs' params.yaml and last checkpoints, and reports:
  * the config fields in which the two runs differ (a fair pair differs in
    `backbone_strategy` only: same learning rate and schedule for the heads,
    same weight decay, same seed, hence the same data order and head
    initialisation);
  * the frozen backbone after training against the upstream checkpoint, per
    kind of variable (kernels; BatchNorm scale and offset; BatchNorm moving
    statistics): the largest absolute difference (0: bit-identical, so it
    ran in inference mode and took no weight decay), and how many optimizer
    slots the checkpoint holds for backbone variables (none: nothing of the
    backbone is trained);
  * the fine-tuned backbone against the same checkpoint: the relative L2
    change per kind (its BatchNorm statistics re-estimated on the detection
    images: it trains in training mode), and its optimizer slots.
Reads checkpoints only: nothing is built or trained.
"""
import collections
import os
from typing import Dict, List

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
import yaml

_KINDS = (('kernels', ('kernel',)), ('BN scale, offset', ('gamma', 'beta')),
          ('BN statistics', ('moving_mean', 'moving_variance')))
_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


def _flat(tree, prefix=''):
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _flat(value, f'{prefix}{key}.')
  else:
    yield prefix[:-1], tree


def config_differences(first: str, second: str) -> List[str]:
  """`field (first's value / second's)` of each params.yaml field whose
  values differ ('absent': a field one run's code did not have)."""
  found = []
  for name in (first, second):
    with open(os.path.join(name, 'params.yaml')) as f:
      found.append(dict(_flat(yaml.safe_load(f))))
  return [f'{k} ({found[0].get(k, "absent")} / {found[1].get(k, "absent")})'
          for k in sorted(set(found[0]) | set(found[1]))
          if found[0].get(k) != found[1].get(k)]


def _backbone(reader) -> Dict[str, np.ndarray]:
  """{checkpoint key: value} of the backbone's variables."""
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith('backbone/') and k.endswith(_SUFFIX)
          and 'OPTIMIZER_SLOT' not in k}


def _kind(key: str) -> str:
  leaf = key[:-len(_SUFFIX)].rsplit('/', 1)[-1]
  for kind, leaves in _KINDS:
    if leaf in leaves:
      return kind
  raise ValueError(f'{key}: not a kernel or a BatchNorm variable')


def backbone_change(run_dir: str, upstream_dir: str) -> Dict:
  """Per kind of backbone variable, the largest absolute difference and
  the relative L2 change from the upstream checkpoint; the number of
  optimizer slots of backbone variables."""
  run = tf.train.load_checkpoint(tf.train.latest_checkpoint(run_dir))
  upstream = tf.train.load_checkpoint(tf.train.latest_checkpoint(upstream_dir))
  mine, theirs = _backbone(run), _backbone(upstream)
  if set(mine) != set(theirs):
    raise ValueError(f'{run_dir} and {upstream_dir}: backbones differ in '
                     f'{len(set(mine) ^ set(theirs))} variable(s)')
  largest = collections.defaultdict(float)
  moved = collections.defaultdict(float)
  norm = collections.defaultdict(float)
  for key, value in mine.items():
    kind = _kind(key)
    difference = value.astype(np.float64) - theirs[key].astype(np.float64)
    largest[kind] = max(largest[kind], float(np.max(np.abs(difference))))
    moved[kind] += float(np.sum(difference ** 2))
    norm[kind] += float(np.sum(theirs[key].astype(np.float64) ** 2))
  slots = [k for k in run.get_variable_to_shape_map()
           if k.startswith('backbone/') and 'OPTIMIZER_SLOT' in k]
  return {'largest': dict(largest),
          'relative': {k: np.sqrt(moved[k] / norm[k]) for k in moved},
          'slots': len(slots), 'variables': len(mine)}


def check(output_dir: str, steps: int) -> str:
  """The checks of every pair on disk, as markdown."""
  folder = os.path.join(output_dir, 'long_schedule')
  lines = []
  for seed in range(100):
    runs = {s: os.path.join(
        folder, f'nasfpn_cascade_{s}_large_s{seed}_{steps}steps')
            for s in ('freeze', 'finetune')}
    upstream = os.path.join(output_dir, f'upstream_large_s{seed}')
    if not all(tf.train.latest_checkpoint(d) for d in (*runs.values(),
                                                         upstream)):
      continue
    lines += [f'## Seed {seed}, {steps} steps', '',
              'Config fields that differ (freeze / finetune): ' + ', '.join(
                  config_differences(runs['freeze'], runs['finetune'])), '',
              '| run | backbone variables | optimizer slots of them | '
              + ' | '.join(f'{kind}: largest abs diff / relative L2'
                           for kind, _ in _KINDS) + ' |',
              '|---|---|---|' + '---|' * len(_KINDS)]
    for strategy, run_dir in runs.items():
      change = backbone_change(run_dir, upstream)
      lines.append(
          f'| {strategy} | {change["variables"]} | {change["slots"]} | '
          + ' | '.join(f'{change["largest"][kind]:.3g} / '
                       f'{change["relative"][kind]:.3g}'
                       for kind, _ in _KINDS) + ' |')
    lines.append('')
  if not lines:
    raise ValueError(f'no freeze/finetune pair at {steps} steps with its '
                     f'upstream under {output_dir}')
  return '\n'.join(['# Are the long-schedule pairs fair? (checkpoints)', '',
                    f'Written by `python experiments/shapes_pair_checks.py '
                    f'--steps={steps}` from the run folders.', '', *lines])


def main(_):
  text = check(FLAGS.output_dir, FLAGS.steps)
  print(text)
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      f.write(text)


if __name__ == '__main__':
  flags.DEFINE_string('output_dir', 'runs/shapes_grid',
                      "The grid's --output_dir.")
  flags.DEFINE_integer('steps', 12000, 'The pairs at this step count.')
  flags.DEFINE_string('output', None, 'Also write the markdown here.')
  FLAGS = flags.FLAGS
  app.run(main)
