r"""Exports a trained detector as a SavedModel, with its class names.

  python -m backbone_reuse.export --experiment=shapes_fasterrcnn \
    --checkpoint=runs/demo/detector --export_dir=runs/demo/export \
    [--config_file=...] [--params_override=...] [--batch_size=N] \
    [--input_type=image_tensor|encoded_image_string_tensor|tf_example] \
    [--annotation_file=TRAIN_OR_VAL.json]

The model is built by *our* task's `build_model` (so every backbone strategy,
residual adapters, every decoder and stage-2 models export) and served by
Model Garden's detection serving module and export library (the library
side: backbone_reuse/serving.py). The config is
the experiment + --config_file YAMLs + --params_override, as in training;
with no --config_file, the params.yaml of a --checkpoint model dir is used.
The restore is loud: every model variable must be matched and every model
variable of the checkpoint used (modeling/backbone_checkpoint.py).

EXPORT_DIR then holds the SavedModel (signature `serving_default` of
--input_type, plus `image_tensor` for uint8 images of any size), the resolved
params.yaml and label_map.json (class index -> category id and name, from
--annotation_file, else the experiment's task.annotation_file). Bad input
prints one `error:` line on stderr and exits with status 2.
"""
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
from absl import app
from absl import flags

from backbone_reuse import errors
from backbone_reuse import serving


def main(_):
  values = flags.FLAGS
  try:
    if values.batch_size is not None and values.batch_size < 1:
      raise errors.BadInput(f'--batch_size={values.batch_size}; accepted: '
                            '>= 1, or unset for any batch size.')
    params = serving.resolve_params(
        values.experiment, values.config_file or [],
        values.params_override or '', values.checkpoint)
    info = serving.export(params, values.checkpoint, values.export_dir,
                          values.batch_size, values.input_type,
                          values.annotation_file)
  except errors.BadInput as error:
    errors.report_bad_input(error)
  print(json.dumps({'export_dir': values.export_dir, **info}))


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('experiment', None, 'A registered experiment name.')
  flags.DEFINE_multi_string('config_file', None,
                            'YAMLs applied in order (as in training).')
  flags.DEFINE_string('params_override', '', 'Overrides applied last.')
  flags.DEFINE_string('checkpoint', None,
                      'A training model dir (latest checkpoint) or prefix.')
  flags.DEFINE_string('export_dir', None, 'Where the SavedModel goes.')
  flags.DEFINE_integer('batch_size', None,
                       'Fixed serving batch size; unset: any.')
  flags.DEFINE_enum('input_type', 'image_tensor', list(serving.INPUT_TYPES),
                    'Input of the serving_default signature.')
  flags.DEFINE_string('annotation_file', '',
                      'COCO/LVIS JSON whose categories name the classes.')
  flags.mark_flags_as_required(['experiment', 'checkpoint', 'export_dir'])
  app.run(main)
