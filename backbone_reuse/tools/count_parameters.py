r"""Builds an experiment's model and prints its parameter counts (Table 3).

  python -m backbone_reuse.tools.count_parameters \
    --experiment=backbone_reuse_cascadercnn_coco \
    --config_file=configs/coco/cascadercnn_r101_nasfpn.yaml \
    --config_file=configs/strategies/freeze.yaml \
    --params_override=task.init_checkpoint=unused [--output=parameters.json]

Nothing is trained or restored; the checkpoint path is only validated.
"""
import json

from absl import app
from absl import flags
from official.core import task_factory

from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse.analysis import parameters
from backbone_reuse.configs import resolve

def count_experiment(experiment: str, config_files=(), params_override='',
                     root=None) -> dict:
  """Builds the experiment's model as training would and counts it."""
  params = resolve.experiment_config(experiment, config_files,
                                     params_override, root=root)
  return parameters.count_parameters(
      task_factory.get_task(params.task).build_model())


def main(_):
  values = flags.FLAGS
  counts = count_experiment(values.experiment, values.config_file,
                            values.params_override)
  text = json.dumps(counts, indent=2)
  print(text)
  if values.output:
    with open(values.output, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('experiment', None, 'Registered experiment.')
  flags.DEFINE_multi_string('config_file', [], 'YAML files.')
  flags.DEFINE_string('params_override', '', 'Overrides.')
  flags.DEFINE_string('output', None, 'Also write the JSON here.')
  flags.mark_flag_as_required('experiment')
  app.run(main)
