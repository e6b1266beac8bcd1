"""Installs backbone_reuse; the pinned dependency set lives in requirements.txt."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements():
  lines = (_HERE / 'requirements.txt').read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith('#')]


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
)
