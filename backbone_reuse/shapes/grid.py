r"""The paper's Table 1 (and Table 3, Figures 1 and 4) in miniature, on a CPU.

  python -m backbone_reuse.shapes.grid [--output_dir=runs/shapes_grid] \
      [--report_dir=experiments/shapes/report]
  python -m backbone_reuse.shapes.grid --curve   # learning curves
  python -m backbone_reuse.shapes.grid --curve --detector_steps=3000 \
      [--detector_learning_rate=0.16]   # another schedule's curves
  python -m backbone_reuse.shapes.grid --report_only   # from the records
  python -m backbone_reuse.shapes.grid --pilot   # the schedule pilot
  python -m backbone_reuse.shapes.grid --headline   # the headline at L
  python -m backbone_reuse.shapes.grid --quick   # tiny; what the tests run

Which runs the grid trains (capacities, strategies, upstreams, seeds,
schedules) is shapes/design.py; shapes/grid_runner.py trains them and
writes the report (shapes/report.py); this is the command line.

`--curve` trains each capacity's finetune and freeze run (large upstream,
seed 0) with a checkpoint at every quarter of the schedule, each evaluated:
the learning curve the schedule is chosen from. Those runs are the grid's
seed-0 runs too (a run's identity ignores checkpointing).

Resuming: finished stages on disk are not redone (shapes/stages.py), and each
finished run's small record goes to REPORT_DIR/runs/NAME.json with its config
key (shapes/runs.py). A run whose committed record has the key the run would
have now is not trained again, on any machine; so committing REPORT_DIR/runs
as runs finish lets a fresh clone continue the grid.
"""
import dataclasses
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
import sys

from absl import app
from absl import flags
from absl import logging

from backbone_reuse import errors
from backbone_reuse.modeling import precision
from backbone_reuse.shapes import claims
from backbone_reuse.shapes import design
from backbone_reuse.shapes import grid_runner
from backbone_reuse.shapes import long_schedule


def main(_):
  logging.set_verbosity(logging.WARNING)  # Each run's details: its train.log.
  scale = design.SCALES['quick' if FLAGS.quick else 'default']
  changes = {'detector_learning_rate': FLAGS.detector_learning_rate,
             'detector_steps': FLAGS.detector_steps}
  for name, value in changes.items():
    if value is not None and value <= 0:
      errors.report_bad_input(errors.BadInput(
          f'--{name}={value}; accepted: a positive number'))
  try:
    dtype, reason = precision.choose(FLAGS.precision)
  except ValueError as error:
    errors.report_bad_input(error)
  print(f'Precision: {dtype} ({reason}).', flush=True)
  scale = dataclasses.replace(
      scale, precision=dtype,
      **{k: v for k, v in changes.items() if v is not None})
  report_dir = FLAGS.report_dir or os.path.join(FLAGS.output_dir, 'report')
  command = 'python -m backbone_reuse.shapes.grid ' + ' '.join(sys.argv[1:])
  grid = grid_runner.ShapesGrid(FLAGS.output_dir, scale, report_dir, command, reason)
  if FLAGS.pilot and FLAGS.headline:
    errors.report_bad_input(errors.BadInput(
        '--pilot and --headline: accepted: one of them (the headline runs '
        'at the long schedule the pilot chose)'))
  if FLAGS.pilot:
    grid.run_pilot()
  elif FLAGS.headline:
    if grid.long_schedule(grid.pilot_records())['L'] is None:
      errors.report_bad_input(errors.BadInput(
          '--headline before the pilot chose L; accepted: after --pilot. '
          + long_schedule.describe(grid.long_schedule(grid.pilot_records()))))
    claim = grid.run_headline()
    print(f'The headline at L: {claim and claims.decided(claim)}; see '
          f'{os.path.join(report_dir, "long_schedule.md")}.', flush=True)
  else:
    grid.run(FLAGS.curve, FLAGS.report_only)


if __name__ == '__main__':
  flags.DEFINE_string('output_dir', 'runs/shapes_grid',
                      'Data, checkpoints and logs of every run go here.')
  flags.DEFINE_string('report_dir', None,
                      'Records (runs/NAME.json) and the report (default: '
                      'OUTPUT_DIR/report).')
  flags.DEFINE_bool('quick', False, 'A tiny grid (what the tests run).')
  flags.DEFINE_bool('curve', False,
                    'Only the learning-curve runs: each capacity, finetune '
                    'and freeze, evaluated at every quarter of the schedule.')
  flags.DEFINE_string(
      'precision', 'float32',
      "auto | float32 | bfloat16: what every run computes in (part of each "
      "run's name and key). auto: bfloat16 where the CPU reports AMX-BF16 "
      'or AVX512-BF16 (or a GPU supports it). Default float32: the committed '
      'grid was measured in float32 and resumes only in it.')
  flags.DEFINE_bool('pilot', False,
                    'Only the schedule pilot: Cascade R-CNN NAS-FPN finetune '
                    'and freeze at each of its step counts, scored on the dev '
                    'split too (the long schedule is chosen from it).')
  flags.DEFINE_bool('headline', False,
                    'Only the headline at the long schedule L the pilot '
                    'chose: Cascade R-CNN NAS-FPN finetune and freeze, large '
                    'upstream, on 5 seeds, then one more at a time (up to 8) '
                    'while the claim needs more seeds than it has; then FPN '
                    '(the capacity claim) and the small upstream (the '
                    'upstream-size claim) at L, 3 seeds each.')
  flags.DEFINE_bool('report_only', False,
                    'Train nothing: write the report from the committed '
                    'records (those missing are named and left out).')
  flags.DEFINE_float('detector_learning_rate', None,
                     'Peak learning rate of every detector run (part of each '
                     "run's identity). Unset: the scale's.")
  flags.DEFINE_integer('detector_steps', None,
                       'Training steps of every detector run (the schedule '
                       "follows; part of each run's identity). Unset: the "
                       "scale's.")
  FLAGS = flags.FLAGS
  app.run(main)
