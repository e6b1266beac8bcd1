"""One training run of an experiment config, Model Garden's way.

`run` is what `python -m backbone_reuse.train` and `python -m
backbone_reuse.reproduce` do once the config is resolved and preflight has
passed: the precision policy, the distribution strategy, our task, Model
Garden's trainer and its runner (`train_lib.OrbitExperimentRunner`, what
`run_experiment` runs), MODEL_DIR/parameters.json
(counts of the model it trains) before training; then
MODEL_DIR/resources.json (step time, peak memory) and MODEL_DIR/metrics.json
(the last evaluation).
Only the chief writes the model dir's files (params.yaml and the three
above); a non-chief worker of a multi-worker run resumes from the chief's
checkpoint there (`_Runner`).
`end_process` ends a finished run's process at once.
"""
import json
import os
import sys
from typing import Optional

from absl import logging
from official.common import distribute_utils
from official.core import task_factory
from official.core import train_lib
from official.core import train_utils
from official.modeling import performance
import tensorflow as tf
import tf_keras

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.analysis import eval_summaries
from backbone_reuse.analysis import parameters
from backbone_reuse.analysis import resources
from backbone_reuse.data import tfrecord_check

METRICS_FILENAME = eval_summaries.METRICS_FILENAME


def seed_globally(params) -> None:
  """With task.train_data.seed set (--seed), Python's, NumPy's and
  TensorFlow's global seeds follow it: the initialisation and the
  augmentation ops (which take no seed of their own) repeat."""
  if params.task.train_data.seed is not None:
    tf_keras.utils.set_random_seed(params.task.train_data.seed)


def distribution_strategy(params) -> tf.distribute.Strategy:
  """The run's distribution strategy (`runtime.*`, Model Garden's builder).

  A command line creates it first, before preflight reads records or builds
  a model: a multi-worker strategy configures TensorFlow's collective ops,
  which TensorFlow allows only before its runtime starts ("Collective ops
  must be configured at program startup"; tests/test_multi_worker.py).
  """
  return distribute_utils.get_distribution_strategy(
      distribution_strategy=params.runtime.distribution_strategy,
      all_reduce_alg=params.runtime.all_reduce_alg,
      num_gpus=params.runtime.num_gpus,
      tpu_address=params.runtime.tpu)


def is_chief(distribution: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's files: a single process, or the
  chief of a multi-worker run (the worker that checkpoints to the model
  dir; the others checkpoint to temporary directories)."""
  return distribution.extended.should_checkpoint


class _Runner(train_lib.OrbitExperimentRunner):
  """Model Garden's runner, with a non-chief worker that resumes.

  Model Garden's non-chief worker checkpoints to a fresh temporary directory
  (every worker must take part in a save), so on a second invocation it finds
  no checkpoint there and initialises from task.init_checkpoint at step 0
  while the chief restores its last step; the workers then disagree on the
  step and the run fails in a collective. Here a non-chief worker with no
  checkpoint of its own restores the chief's latest one from the model dir,
  which every worker of a multi-host run shares (tests/test_multi_worker.py).
  """

  def _maybe_build_checkpoint_manager(self):
    manager = super()._maybe_build_checkpoint_manager()
    if manager is None or is_chief(self.strategy):
      return manager
    chiefs = tf.train.latest_checkpoint(self.model_dir)
    if not chiefs:
      return manager

    def restore_chiefs():
      logging.info('Non-chief worker: restoring the chief\'s checkpoint %s',
                   chiefs)
      self.trainer.checkpoint.restore(chiefs).assert_existing_objects_matched()

    return tf.train.CheckpointManager(
        self.trainer.checkpoint, directory=manager.directory,
        max_to_keep=1,  # As Model Garden's non-chief manager.
        step_counter=self.trainer.global_step,
        checkpoint_interval=self.params.trainer.checkpoint_interval,
        init_fn=restore_chiefs)


def run(params, model_dir: str, mode: str,
        distribution: Optional[tf.distribute.Strategy] = None) -> dict:
  """Runs `mode` for validated `params`; returns the last evaluation's metrics
  (also written to MODEL_DIR/metrics.json with their step; a non-chief
  worker writes nothing and returns {}). `distribution`: the strategy the
  caller created first (default: created here)."""
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
  if distribution is None:
    distribution = distribution_strategy(params)
  writes = is_chief(distribution)
  if 'train' in mode and writes:
    train_utils.serialize_config(params, model_dir)
  seed_globally(params)
  with distribution.scope():
    task = task_factory.get_task(params.task, logging_dir=model_dir)
    # The trainer Model Garden's runner would build, built here so that the
    # run records its model's parameter counts before it trains.
    trainer = train_utils.create_trainer(
        params, task, train='train' in mode, evaluate='eval' in mode,
        checkpoint_exporter=train_utils.maybe_create_best_ckpt_exporter(
            params, model_dir))
  if 'train' in mode:
    parameters.log_and_write(trainer.model, model_dir if writes else None)
  try:
    _Runner(distribution_strategy=distribution, task=task, mode=mode,
            params=params, model_dir=model_dir, trainer=trainer).run()
  except tf.errors.DataLossError as error:
    # TensorFlow's message names no file; the patterns and the tool do.
    checks = '; '.join(
        f'task.{name}.input_path={pattern!r} -> '
        f'{tfrecord_check.command_for(pattern)}'
        for name, pattern in input_patterns(params))
    raise tf.errors.DataLossError(
        None, None,
        f'a corrupt input record ({error.message.strip().splitlines()[0]}). '
        f'Read every shard to find it: {checks}') from None
  if not writes:
    return {}
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


def input_patterns(params):
  """(name, comma-joined pattern) of the task's TFRecord inputs."""
  found = []
  for name in ('train_data', 'validation_data'):
    pattern = tfrecord_check.joined_pattern(
        getattr(params.task, name).input_path)
    if pattern:
      found.append((name, pattern))
  return found


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
