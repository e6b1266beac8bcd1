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

from backbone_reuse.analysis import parameters
from backbone_reuse.configs import resolve

_EXPERIMENT = flags.DEFINE_string('experiment', None, 'Registered experiment.')
_CONFIG_FILE = flags.DEFINE_multi_string('config_file', [], 'YAML files.')
_PARAMS_OVERRIDE = flags.DEFINE_string('params_override', '', 'Overrides.')
_OUTPUT = flags.DEFINE_string('output', None, 'Also write the JSON here.')


def main(_):
  params = resolve.experiment_config(_EXPERIMENT.value, _CONFIG_FILE.value,
                                     _PARAMS_OVERRIDE.value)
  model = task_factory.get_task(params.task).build_model()
  counts = parameters.count_parameters(model)
  text = json.dumps(counts, indent=2)
  print(text)
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  flags.mark_flag_as_required('experiment')
  app.run(main)
