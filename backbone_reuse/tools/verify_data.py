r"""Reads every TFRecord shard of an input pattern to the end.

  python -m backbone_reuse.tools.verify_data --input_path=GLOB[,GLOB...]

One line per shard: `ok PATH: N records`, or `CORRUPT PATH: N records
readable, then: REASON`; then a total. Exits 0 when every shard reads to
the end, 1 when some are corrupt, 2 on bad input (a pattern that matches no
file). A training run that hits a corrupt record points here.
"""
import sys

from absl import app
from absl import flags

from backbone_reuse import errors
from backbone_reuse.data import tfrecord_check

CORRUPT_EXIT_CODE = 1
BAD_INPUT_EXIT_CODE = errors.BAD_INPUT_EXIT_CODE


def main(_):
  try:
    paths = tfrecord_check.shards(flags.FLAGS.input_path)
  except ValueError as error:
    print(f'error: --input_path: {error}', file=sys.stderr)
    raise SystemExit(BAD_INPUT_EXIT_CODE) from None
  corrupt = 0
  total = 0
  for path in paths:
    shard = tfrecord_check.read_shard(path)
    print(tfrecord_check.report_line(shard), flush=True)
    corrupt += shard.error is not None
    total += shard.records
  print(f'{len(paths)} shard(s), {total} records readable, {corrupt} '
        'corrupt.')
  if corrupt:
    raise SystemExit(CORRUPT_EXIT_CODE)


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('input_path', None,
                      'TFRecord glob(s), comma-separated.')
  flags.mark_flag_as_required('input_path')
  app.run(main)
