r"""Runs one paper row of experiments/paper_tables.yaml in one command.

  python -m backbone_reuse.reproduce --entry=list
  python -m backbone_reuse.reproduce --entry=ID --estimate [--tflops=50] \
    [--replicas=8]
  python -m backbone_reuse.reproduce --entry='table1/*' --estimate > costs.md
  python -m backbone_reuse.reproduce --entry=ID --model_dir=DIR \
    [--init_checkpoint=CKPT] [--data_dir=DIR] [--tpu=NAME] [--dry_run] \
    [--config_file=EXTRA.yaml] [--params_override=EXTRA] [any train flag]

An entry names its experiment, YAMLs and override; --init_checkpoint replaces
the entry's task.init_checkpoint, --data_dir the folder of every input
pattern and annotation file (their file names are kept), --tpu also selects
the TPU distribution strategy; extra --config_file YAMLs and
--params_override come after the entry's. Then: preflight (preflight.py),
and training exactly as `python -m backbone_reuse.train` with the printed
command. A stage-2 entry refuses to start without its stage-1 run's final
checkpoint. --dry_run prints the command, writes DIR/params.yaml and
reports what preflight finds, without training. --estimate reads neither
data nor checkpoint and trains nothing: it prints what training the entry and
its twin (the same row with the backbone fine-tuned if the row freezes it,
frozen if it fine-tunes) would cost -- parameters, training FLOPs, memory per
replica, accelerator hours (analysis/estimate.py); with --entry=all or a glob
it prints a markdown table of every row matched. Bad input prints `error:`
lines on stderr and exits with status 2.
"""
import dataclasses
import os
import re
import shlex
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
from official.core import train_utils
import tensorflow as tf

from backbone_reuse import errors
from backbone_reuse import manifest
from backbone_reuse import preflight
from backbone_reuse import registry_imports
from backbone_reuse import training
from backbone_reuse.analysis import estimate
from backbone_reuse.configs import resolve

REPO = manifest.REPO
MANIFEST = manifest.MANIFEST
# Task fields holding a data file or pattern (--data_dir moves them).
DATA_FIELDS = (
    'task.train_data.input_path',
    'task.validation_data.input_path',
    'task.annotation_file',
    'task.class_balanced_loss.annotation_file',
    'task.train_data.repeat_factor_sampling.annotation_file',
)

BadInput = errors.BadInput


load_manifest = manifest.load


find_entry = manifest.find


def listing(entries: Dict[str, Dict]) -> str:
  """A markdown table of every entry with the paper's numbers."""
  lines = ['| entry | table | row | paper |', '|---|---|---|---|']
  for entry in entries.values():
    numbers = ', '.join(f'{k} {v}' for k, v in (entry.get('paper') or {})
                        .items())
    row = entry['row'].replace('|', '\\|')
    lines.append(f"| {entry['id']} | {entry['table']} | {row} | "
                 f"{numbers or '-'} |")
  return '\n'.join(lines)


def _get(params, dotted: str):
  value = params
  for name in dotted.split('.'):
    value = getattr(value, name, None)
    if value is None:
      return None
  return value


@dataclasses.dataclass
class Plan:
  """What an entry runs: the train command's parts and resolved params."""
  entry: Dict
  experiment: str
  config_files: List[str]
  params_override: str
  mode: str
  model_dir: str
  train_flags: List[str]
  params: object = None

  def command(self) -> str:
    argv = ['python', '-m', 'backbone_reuse.train',
            f'--experiment={self.experiment}']
    # A path that does not resolve from here (another directory, an
    # installed package) is printed from where the project's YAMLs are.
    argv += [f'--config_file={f if os.path.isfile(f) else REPO / f}'
             for f in self.config_files]
    if self.params_override:
      argv.append(f'--params_override={self.params_override}')
    argv += [f'--mode={self.mode}', f'--model_dir={self.model_dir}']
    argv += self.train_flags
    return shlex.join(argv)


def plan(entry: Dict, model_dir: str, init_checkpoint: str = '',
         data_dir: str = '', tpu: str = '',
         extra_config_files: Sequence[str] = (), extra_override: str = '',
         mode: str = 'train_and_eval') -> Plan:
  """The train command and resolved params of `entry` with the flags."""
  if not model_dir:
    raise BadInput('--model_dir is required (where checkpoints, params.yaml '
                   'and metrics.json go).')
  overrides = [entry['params_override']] if entry.get(
      'params_override') else []
  if init_checkpoint:
    overrides.append(f'task.init_checkpoint={init_checkpoint}')
  if tpu:
    overrides += ['runtime.distribution_strategy=tpu', f'runtime.tpu={tpu}']
  config_files = list(entry['config_files']) + list(extra_config_files)
  for path in extra_config_files:
    if not os.path.isfile(path) and not (REPO / path).is_file():
      raise BadInput(f'--config_file={path!r}: no such file.')

  def resolved(extra: List[str]):
    joined = ','.join(overrides + extra + ([extra_override]
                                           if extra_override else []))
    try:
      return joined, resolve.experiment_config(
          entry['experiment'], config_files, joined, root=str(REPO))
    except (ValueError, KeyError, AttributeError) as error:
      raise BadInput(f'--entry={entry["id"]!r} does not resolve with the '
                     f'flags given: {str(error).splitlines()[0]}') from None

  joined, params = resolved([])
  if data_dir:
    moved = []
    for field in DATA_FIELDS:
      value = _get(params, field)
      if isinstance(value, (list, tuple)):
        value = ','.join(value)
      if value:
        moved.append(f'{field}=' + ','.join(
            os.path.join(data_dir, os.path.basename(p))
            for p in value.split(',')))
    joined, params = resolved(moved)
  train_flags = [f'--tpu={tpu}'] if tpu else []
  return Plan(entry, entry['experiment'], config_files, joined, mode,
              model_dir, train_flags, params)


def _checkpoint_step(path: str) -> Optional[int]:
  match = re.search(r'-(\d+)$', path or '')
  return int(match.group(1)) if match else None


def check_stage1(entries: Dict[str, Dict], entry_plan: Plan) -> List[str]:
  """A stage-2 entry's stage-1 run must have reached its final step."""
  stage1_id = entry_plan.entry.get('depends_on')
  if not stage1_id:
    return []
  stage1 = plan(entries[stage1_id], '/unused')
  final_step = stage1.params.trainer.train_steps
  directory = entry_plan.params.task.init_checkpoint
  if tf.io.gfile.isdir(directory):
    latest = tf.train.latest_checkpoint(directory)
  else:  # A checkpoint prefix.
    latest = directory if tf.io.gfile.exists(directory + '.index') else None
  step = _checkpoint_step(latest)
  if step == final_step:
    return []
  found = f'found step {step} ({latest})' if latest else 'found none'
  return [f'task.init_checkpoint={directory!r}: --entry='
          f'{entry_plan.entry["id"]!r} is stage 2 of {stage1_id!r} and '
          f'starts from its final checkpoint (step {final_step}); {found}. '
          f'Run python -m backbone_reuse.reproduce --entry={stage1_id} '
          f'--model_dir={directory} first, or pass --init_checkpoint.']


def problems_before_training(entries: Dict[str, Dict],
                             entry_plan: Plan) -> Tuple[List[str], float]:
  """The stage-1 check and preflight: (problems, seconds)."""
  start = time.perf_counter()
  problems = check_stage1(entries, entry_plan)
  problems += preflight.check(entry_plan.params, entry_plan.model_dir,
                              entry_plan.mode)['problems']
  return problems, time.perf_counter() - start


def dry_run(entry_plan: Plan, problems: List[str], seconds: float) -> str:
  """Writes MODEL_DIR/params.yaml; returns the report to print."""
  train_utils.serialize_config(entry_plan.params, entry_plan.model_dir)
  lines = [f'preflight: {problem}' for problem in problems]
  lines.append(f'dry run: {entry_plan.model_dir}/params.yaml written; '
               f'preflight found {len(problems)} problem(s) in '
               f'{seconds:.1f} s.')
  return '\n'.join(lines)


def estimate_lines(entries: Dict[str, Dict], pattern: str, tflops: float,
                   replicas: int,
                   cache: Optional[Dict[str, Dict]] = None) -> List[str]:
  """What --estimate prints: one entry (and its twin) in words, or a
  markdown table of every entry `pattern` matches and of each twin that is
  not one of them (progress on stderr). Each config is traced in a process
  of its own (the memory of many traces does not add up); configs that
  differ only in data or checkpoint are traced once (per call, or across
  calls that share `cache`)."""
  selected = manifest.select(entries, pattern)
  if not selected:
    find_entry(entries, pattern)  # Raises, naming the closest ids.

  def what(entry):
    return (entry['experiment'], tuple(entry['config_files']),
            entry.get('params_override') or '')
  chosen = [what(entries[entry_id]) for entry_id in selected]
  todo = []
  for entry_id in selected:
    twin = manifest.twin(entries[entry_id])
    todo.append(entries[entry_id])
    if twin and what(twin) not in chosen:
      todo.append(twin)
  cache = {} if cache is None else cache
  rows = []
  for number, entry in enumerate(todo, 1):
    print(f'[{number}/{len(todo)}] estimating {entry["id"]} ...',
          file=sys.stderr, flush=True)
    params = plan(entry, '/estimate_only').params
    try:
      cost = estimate.estimate(params, tflops, replicas, cache,
                               registry=registry_imports.__name__)
    except ValueError as error:
      raise BadInput(f'--entry={entry["id"]!r}: {error}') from None
    rows.append((entry['id'], cost))
  if len(selected) == 1:
    lines = []
    for label, cost in rows:
      lines += estimate.describe(label, cost)
    return lines
  return [estimate.TABLE_HEADER] + [estimate.table_row(label, cost)
                                    for label, cost in rows] + [
      '', f'Memory per replica at global batch / {replicas} replicas; hours '
      f'at {tflops:g} TFLOP/s sustained per accelerator '
      '(python -m backbone_reuse.reproduce --estimate; method in '
      'backbone_reuse/analysis/estimate.py).']


def main(_):
  values = flags.FLAGS
  try:
    entries = load_manifest()
    if values.entry == 'list':
      print(listing(entries))
      return
    if values.estimate:
      print('\n'.join(estimate_lines(entries, values.entry, values.tflops,
                                     values.replicas)))
      return
    if values.experiment:
      raise BadInput(f'--experiment={values.experiment!r}: the entry names '
                     'the experiment; use python -m backbone_reuse.train to '
                     'choose one.')
    entry_plan = plan(find_entry(entries, values.entry), values.model_dir,
                      values.init_checkpoint, values.data_dir, values.tpu,
                      values.config_file or [], values.params_override or '',
                      values.mode or 'train_and_eval')
  except BadInput as error:
    errors.report_bad_input(error)
  print(entry_plan.command(), flush=True)
  # Before preflight touches TensorFlow's runtime (training.py says why); a
  # dry run trains nothing and needs none (nor a TPU).
  distribution = (None if values.dry_run
                  else training.distribution_strategy(entry_plan.params))
  problems, seconds = problems_before_training(entries, entry_plan)
  if values.dry_run:
    print(dry_run(entry_plan, problems, seconds))
    return
  if problems:
    for problem in problems:
      print(f'error: {problem}', file=sys.stderr)
    sys.exit(preflight.EXIT_CODE)
  training.run(entry_plan.params, values.model_dir, entry_plan.mode,
               distribution)
  training.end_process()  # Without the wait of a tf.data iterator's teardown.


if __name__ == '__main__':
  # Model Garden's flags (the runtime ones: --tpu, --tf_data_service, ...),
  # defined here, not at import, so importing this module defines none.
  from official.common import flags as tfm_flags  # pylint: disable=g-import-not-at-top
  tfm_flags.define_flags()
  flags.DEFINE_string('entry', None, 'An entry id of paper_tables.yaml, or '
                      '"list"; with --estimate also "all" or a glob '
                      '("table1/*").')
  flags.DEFINE_string('init_checkpoint', '',
                      'Replaces the entry\'s task.init_checkpoint.')
  flags.DEFINE_string('data_dir', '', 'Folder of the input files and '
                      'annotation JSONs (their file names are kept).')
  flags.DEFINE_bool('dry_run', False, 'Print the command, write '
                    'params.yaml, run preflight; do not train.')
  flags.DEFINE_bool('estimate', False, 'Print what training the entry and '
                    'its twin would cost (no data, no training); with '
                    '--entry=all or a glob, a markdown table.')
  flags.DEFINE_float('tflops', estimate.DEFAULT_TFLOPS, '--estimate: '
                     'sustained training TFLOP/s of one accelerator.')
  flags.DEFINE_integer('replicas', estimate.DEFAULT_REPLICAS, '--estimate: '
                       'accelerators the global batch is split over.')
  flags.mark_flag_as_required('entry')
  app.run(main)
