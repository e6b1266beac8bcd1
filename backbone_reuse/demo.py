r"""`python -m backbone_reuse.demo`: the Shapes-world demo, end to end.

  python -m backbone_reuse.demo [--output_dir=runs/demo] [--scale=default] \
      [--precision=auto|float32|bfloat16] [--seed=0] [--backbone=resnet|vit]

What it runs (data, upstream, detector, evaluate) is
backbone_reuse/shapes/demo.py; this is its command line.
"""
from absl import app
from absl import flags
from absl import logging

from backbone_reuse import errors
from backbone_reuse.modeling import precision
from backbone_reuse.shapes import demo


def main(_):
  logging.set_verbosity(logging.WARNING)
  try:
    dtype, reason = precision.choose(flags.FLAGS.precision)
  except ValueError as error:
    errors.report_bad_input(error)
  print(f'Precision: {dtype} ({reason}).', flush=True)
  demo.Demo(flags.FLAGS.output_dir, demo.SCALES[flags.FLAGS.scale],
            flags.FLAGS.seed, dtype, reason, flags.FLAGS.backbone).run()


if __name__ == '__main__':
  flags.DEFINE_string('output_dir', 'runs/demo',
                      'Where data, checkpoints and results go.')
  flags.DEFINE_enum('scale', 'default', list(demo.SCALES),
                    'How much data and training.')
  flags.DEFINE_string('precision', 'auto',
                      'auto | float32 | bfloat16 for both trainings. auto: '
                      'bfloat16 where the CPU reports AMX-BF16 or '
                      'AVX512-BF16 (or a GPU supports it), else float32.')
  flags.DEFINE_integer('seed', 0,
                       'Generates the Shapes world and seeds both trainings '
                       '(data order, samplers, initialisation).')
  flags.DEFINE_enum('backbone', 'resnet', list(demo.BACKBONES),
                    'resnet: a half-width ResNet-18 with an FPN; vit: a '
                    '4-block plain ViT (patch 8) with ViTDet\'s simple '
                    'feature pyramid. Both are pretrained upstream, then '
                    'frozen.')
  app.run(main)
