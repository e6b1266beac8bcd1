r"""The Shapes world's detection set as LVIS-format data, end to end.

  python -m backbone_reuse.shapes.lvis_world --output_dir=runs/shapes_lvis

writes train/ and val/ (JPEGs + LVIS-format annotations.json, see
world.py) and converts both with the LVIS converter (lvis_tfrecord), so
`backbone_reuse_maskrcnn_lvis` runs on a laptop exactly as it runs on LVIS.
"""
import os

from absl import app
from absl import flags

from backbone_reuse.data import lvis_conversion
from backbone_reuse.shapes import world


def make(output_dir: str, train_images: int = 200, val_images: int = 50,
         seed: int = 0) -> dict:
  """Writes and converts both splits.

  Returns:
    {'train', 'val': TFRecord globs, 'train_annotations',
     'val_annotations': LVIS-format JSON paths}.
  """
  weights = world.long_tail_weights(seed)
  frequencies = None
  paths = {}
  for split, num_images, split_seed in (('train', train_images, seed + 1),
                                        ('val', val_images, seed + 2)):
    annotation_file, image_dir, frequencies = (
        world.write_detection_split(
            os.path.join(output_dir, split), num_images, split_seed, weights,
            frequencies))
    paths[split] = lvis_conversion.convert(
        annotation_file, [image_dir], os.path.join(output_dir, split))
    paths[f'{split}_annotations'] = annotation_file
  return paths


def main(_):
  values = flags.FLAGS
  for name, path in make(values.output_dir, values.train_images,
                         values.val_images).items():
    print(f'{name}: {path}')


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('output_dir', 'runs/shapes_lvis', 'Output folder.')
  flags.DEFINE_integer('train_images', 200, 'Training scenes (>= 40).')
  flags.DEFINE_integer('val_images', 50, 'Validation scenes (>= 40).')
  app.run(main)
