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
step time and peak memory of training to MODEL_DIR/resources.json. In a
multi-worker run every worker gets the same (shared) --model_dir; only the
chief writes these files.
Once all of it is written the process ends at once (training.end_process).
The run itself: backbone_reuse/training.py (shared with reproduce).
"""
import sys

from absl import app
from absl import flags
from absl import logging
import gin
from official.common import flags as tfm_flags
from official.core import train_utils

from backbone_reuse import errors
from backbone_reuse import preflight
from backbone_reuse import training
from backbone_reuse.configs import resolve

FLAGS = flags.FLAGS


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


def main(_):
  gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_params)
  try:
    params = resolve.parse_configuration(FLAGS)
  except (KeyError, ValueError) as error:
    # A config that does not resolve (an unknown key, a refused value): one
    # line, before anything is built.
    print(f'error: {errors.one_line(error)}', file=sys.stderr)
    sys.exit(preflight.EXIT_CODE)
  # Before preflight touches TensorFlow's runtime (training.py says why).
  distribution = training.distribution_strategy(params)
  if FLAGS.preflight:
    preflight_or_exit(params, FLAGS.model_dir, FLAGS.mode)
  training.run(params, FLAGS.model_dir, FLAGS.mode, distribution)
  if training.is_chief(distribution):
    train_utils.save_gin_config(FLAGS.mode, FLAGS.model_dir)
  logging.info('Run finished; everything is written to %s.', FLAGS.model_dir)
  training.end_process()


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
