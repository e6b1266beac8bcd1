"""Installs backbone_reuse; the pinned dependency set lives in requirements.txt.

A built (non-editable) install also carries the project's YAMLs (configs/)
and the manifest of paper rows (experiments/paper_tables.yaml) inside the
package, under backbone_reuse/_data/ (backbone_reuse/package_data.py reads
them there), so `reproduce` and the Shapes grid work from any directory.
"""
import pathlib
import shutil

import setuptools
from setuptools.command import build_py

_HERE = pathlib.Path(__file__).parent
# Copied into the package, relative paths kept (package_data.py).
_DATA = ('configs', 'experiments/paper_tables.yaml')
_DATA_DIR = '_data'


def _requirements():
  lines = (_HERE / 'requirements.txt').read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith('#')]


class _BuildWithData(build_py.build_py):
  """build_py, then the YAMLs and the manifest into the built package."""

  def run(self):
    super().run()
    target = pathlib.Path(self.build_lib) / 'backbone_reuse' / _DATA_DIR
    for relative in _DATA:
      source = _HERE / relative
      destination = target / relative
      destination.parent.mkdir(parents=True, exist_ok=True)
      if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns('*.pyc', '__pycache__'))
      else:
        shutil.copyfile(source, destination)


setuptools.setup(
    name='backbone_reuse',
    version='0.1.0',
    description=('Proper Reuse of Image Classification Features Improves '
                 'Object Detection (CVPR 2022) on TF Model Garden.'),
    long_description=(_HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['backbone_reuse', 'backbone_reuse.*']),
    python_requires='>=3.10,<3.12',
    install_requires=_requirements(),
    cmdclass={'build_py': _BuildWithData},
)
