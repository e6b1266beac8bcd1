r"""Trains and evaluates backbone_reuse experiments (Model Garden's driver).

  python -m backbone_reuse.train --experiment=backbone_reuse_fasterrcnn_coco \
    --config_file=configs/coco/fasterrcnn_r101_nasfpn.yaml \
    --config_file=configs/strategies/freeze.yaml \
    --params_override=task.init_checkpoint=/ckpts/resnet_rs_101_imagenet \
    --mode=train_and_eval --model_dir=/tmp/run

Overrides apply in order: registered factory, each --config_file, then
--params_override; the result is validated (backbone strategy included) and
written to MODEL_DIR/params.yaml. Before the model is built, preflight.py
checks inputs, annotation files, the checkpoint and the model dir
(--nopreflight skips it). Evaluation metrics of the last evaluation go
to MODEL_DIR/metrics.json; parameter counts to MODEL_DIR/parameters.json;
step time and peak memory of training to MODEL_DIR/resources.json.
Once all of it is written the process ends at once (end_process).
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import gin
from official.common import distribute_utils
from official.common import flags as tfm_flags
from official.core import task_factory
from official.core import train_lib
from official.core import train_utils
from official.modeling import performance
import tensorflow as tf
import tf_keras

from backbone_reuse import errors
from backbone_reuse import preflight
from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.analysis import eval_summaries
from backbone_reuse.analysis import resources
from backbone_reuse.configs import resolve
from backbone_reuse.data import tfrecord_check

FLAGS = flags.FLAGS
METRICS_FILENAME = eval_summaries.METRICS_FILENAME


def seed_globally(params) -> None:
  """With task.train_data.seed set (--seed), Python's, NumPy's and
  TensorFlow's global seeds follow it: the initialisation and the
  augmentation ops (which take no seed of their own) repeat."""
  if params.task.train_data.seed is not None:
    tf_keras.utils.set_random_seed(params.task.train_data.seed)


def run(params, model_dir: str, mode: str) -> dict:
  """Runs `mode` for validated `params`; returns the last evaluation's metrics
  (also written to MODEL_DIR/metrics.json with their step)."""
  if 'train' in mode:
    train_utils.serialize_config(params, model_dir)
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  distribution = distribute_utils.get_distribution_strategy(
      distribution_strategy=params.runtime.distribution_strategy,
      all_reduce_alg=params.runtime.all_reduce_alg,
      num_gpus=params.runtime.num_gpus,
      tpu_address=params.runtime.tpu)
  seed_globally(params)
  with distribution.scope():
    task = task_factory.get_task(params.task, logging_dir=model_dir)
  try:
    train_lib.run_experiment(
        distribution_strategy=distribution, task=task, mode=mode,
        params=params, model_dir=model_dir)
  except tf.errors.DataLossError as error:
    # TensorFlow's message names no file; the patterns and the tool do.
    checks = '; '.join(
        f'task.{name}.input_path={pattern!r} -> '
        f'{tfrecord_check.command_for(pattern)}'
        for name, pattern in _input_patterns(params))
    raise tf.errors.DataLossError(
        None, None,
        f'a corrupt input record ({error.message.strip().splitlines()[0]}). '
        f'Read every shard to find it: {checks}') from None
  if 'train' in mode:
    resources.write(model_dir)
  step, metrics = eval_summaries.read_last_eval(model_dir)
  if metrics:
    path = os.path.join(model_dir, METRICS_FILENAME)
    with tf.io.gfile.GFile(path, 'w') as f:
      json.dump({'step': step, 'metrics': metrics}, f, indent=2,
                sort_keys=True)
    logging.info('Evaluation metrics of step %d written to %s', step, path)
  return metrics


def _input_patterns(params):
  """(name, comma-joined pattern) of the task's TFRecord inputs."""
  found = []
  for name in ('train_data', 'validation_data'):
    pattern = getattr(params.task, name).input_path
    if not isinstance(pattern, str):
      pattern = ','.join(pattern)
    if pattern:
      found.append((name, pattern))
  return found


def preflight_or_exit(params, model_dir: str, mode: str) -> None:
  """Runs the preflight checks; on problems prints one `error:` line each
  on stderr and exits with preflight.EXIT_CODE."""
  try:
    seconds = preflight.run(params, model_dir, mode)
  except preflight.PreflightError as error:
    for problem in error.problems:
      print(f'error: {problem}', file=sys.stderr)
    sys.exit(preflight.EXIT_CODE)
  logging.info('Preflight passed in %.1f s.', seconds)


def end_process(code: int = 0) -> None:
  """Ends a finished run's process without interpreter teardown.

  Teardown deletes the training input's tf.data iterator, whose destructor
  waits for tf.data's autotuning thread to finish its sleep between
  optimisations, which grows to 60 s (TF 2.20; the thread was seen with gdb
  in Model::OptimizeLoop). Measured on the Shapes grid: 14 of 43 processes
  lived 10-57 s after their last line; a rerun frozen Cascade NAS-FPN run,
  60 s. By the time this is called everything the run produces is on disk
  (checkpoints are saved synchronously, Orbit flushes summaries after each
  write, metrics.json and the gin config are closed), so only the streams
  need flushing.
  """
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def main(_):
  gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_params)
  try:
    params = resolve.parse_configuration(FLAGS)
  except (KeyError, ValueError) as error:
    # A config that does not resolve (an unknown key, a refused value): one
    # line, before anything is built.
    print(f'error: {errors.one_line(error)}', file=sys.stderr)
    sys.exit(preflight.EXIT_CODE)
  if FLAGS.preflight:
    preflight_or_exit(params, FLAGS.model_dir, FLAGS.mode)
  run(params, FLAGS.model_dir, FLAGS.mode)
  train_utils.save_gin_config(FLAGS.mode, FLAGS.model_dir)
  logging.info('Run finished; everything is written to %s.', FLAGS.model_dir)
  end_process()


if __name__ == '__main__':
  tfm_flags.define_flags()
  flags.DEFINE_integer(
      'seed', None, 'Seeds the run: training data order and augmentation '
      '(task.train_data.seed, deterministic), Copy-Paste and repeat-factor '
      'sampling, and the initialisation. Unset: the config\'s seed (none: '
      'random).')
  flags.DEFINE_bool('preflight', True,
                    'Check inputs, annotation files, the checkpoint and the '
                    'model dir before building the model.')
  flags.mark_flags_as_required(['experiment', 'mode', 'model_dir'])
  app.run(main)
