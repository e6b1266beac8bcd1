"""Where the project's YAMLs (configs/) and the manifest of paper rows
(experiments/paper_tables.yaml) are read from.

In a source checkout, or an editable install of one, they sit beside the
package. An installed wheel (`pip install .`) carries copies inside the
package, under backbone_reuse/_data/ with the same relative paths (setup.py
puts them there), so `reproduce` and the Shapes grid work from any
directory. Relative config paths such as 'configs/coco/x.yaml' are taken
from `root()` either way.
"""
import importlib.resources
import pathlib

INSTALLED_DIR = '_data'  # Inside the package; setup.py fills it.
# What `root()` must hold: a folder and a file, relative to it.
CONFIGS = 'configs'
MANIFEST = pathlib.Path('experiments') / 'paper_tables.yaml'


def _has_data(directory: pathlib.Path) -> bool:
  return (directory / CONFIGS).is_dir() and (directory / MANIFEST).is_file()


def root() -> pathlib.Path:
  """The directory holding configs/ and experiments/paper_tables.yaml: the
  checkout around the package if it is one, else the installed copies."""
  package = pathlib.Path(str(importlib.resources.files('backbone_reuse')))
  for candidate in (package.parent, package / INSTALLED_DIR):
    if _has_data(candidate):
      return candidate
  raise FileNotFoundError(
      f'neither {package.parent} (a checkout) nor {package / INSTALLED_DIR} '
      f'(an installed package) holds {CONFIGS}/ and {MANIFEST}; reinstall '
      'backbone_reuse (pip install .) or run it from its checkout.')
