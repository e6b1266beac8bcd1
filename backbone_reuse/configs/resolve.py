"""Builds an experiment config exactly as `backbone_reuse.train` does.

Used by tests, the paper-table manifest and experiment drivers, so that what
they check or run is what the documented command would run.
"""
import dataclasses
import os
from typing import Optional, Sequence

from official.core import train_utils

from backbone_reuse import registry_imports  # pylint: disable=unused-import


@dataclasses.dataclass
class _Flags:
  """The subset of Model Garden's flags that `ExperimentParser` reads."""
  experiment: str
  config_file: Sequence[str]
  params_override: object = ''  # A string or a nested dict.
  tpu: str = ''

  def __contains__(self, name):
    return hasattr(self, name)


def experiment_config(experiment: str, config_files: Sequence[str] = (),
                      params_override=None,
                      root: Optional[str] = None):
  """Registered factory -> each YAML (strict) -> override; then validate.

  Args:
    experiment: a registered experiment name.
    config_files: YAML paths, applied in order; relative ones are taken from
      `root` when given.
    params_override: a `--params_override` string, or a nested dict.
    root: directory that relative config paths start from.

  Returns:
    The validated (unlocked) ExperimentConfig.
  """
  files = [os.path.join(root, f) if root and not os.path.isabs(f) else f
           for f in config_files]
  params = train_utils.ExperimentParser(
      _Flags(experiment, files, params_override or '')).parse()
  params.validate()
  return params
