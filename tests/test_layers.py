"""The import rules that keep the layers pointing one way.

  * configs import no model code: importing backbone_reuse.configs.detection
    (and .strategies, .schedule, .resolve) loads no module of
    backbone_reuse.modeling (not even for a constant), nothing of tasks or
    shapes; resolve does not import the registry (its callers do);
  * no module imports a command-line module (any module with a `__main__`
    block: train, reproduce, export, predict, demo, tools/*, the converters,
    the Shapes grid, ...), command lines included: what two commands share
    lives in a library module (training.py, serving.py, evaluation/files.py,
    data/coco_conversion.py, shapes/grid_runner.py, ...);
  * nothing outside backbone_reuse/shapes/ imports it, except the experiment
    registry (which registers its experiments) and `backbone_reuse.demo`
    (the Shapes demo's command line).
"""
import ast
import pathlib
import subprocess
import sys

import tensorflow as tf

import testing_utils

PACKAGE = testing_utils.REPO / 'backbone_reuse'
SHAPES = 'backbone_reuse.shapes'
MAY_IMPORT_SHAPES = {'backbone_reuse.registry_imports', 'backbone_reuse.demo'}


def _module(path: pathlib.Path) -> str:
  parts = path.relative_to(testing_utils.REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: pathlib.Path):
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      found.update(f'{node.module}.{a.name}' for a in node.names)
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
  return {i for i in found if i.startswith('backbone_reuse')}


def _is_command_line(path: pathlib.Path) -> bool:
  """Whether the module has an `if __name__ == '__main__':` block."""
  for node in ast.parse(path.read_text()).body:
    if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == '__name__'):
      return True
  return False


COMMAND_LINES = {_module(p) for p in PACKAGE.rglob('*.py')
                 if _is_command_line(p)}


def _start(*modules) -> subprocess.Popen:
  """A fresh interpreter that imports `modules` and prints the
  backbone_reuse modules it then holds (`_loaded`)."""
  code = ''.join(f'import {m}\n' for m in modules) + (
      'import sys\nprint("\\n".join(m for m in sys.modules '
      'if m.startswith("backbone_reuse.")))')
  return subprocess.Popen([sys.executable, '-c', code],
                          cwd=testing_utils.REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _loaded(process: subprocess.Popen):
  stdout, stderr = process.communicate()
  if process.returncode:
    raise AssertionError(f'exit {process.returncode}: {stderr[-2000:]}')
  return set(stdout.split())


def _within(name: str, package: str) -> bool:
  return name == package or name.startswith(package + '.')


class LayersTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Both interpreters start at once: each spends its seconds importing
    # TensorFlow, and this machine has two cores.
    cls.configs = _start('backbone_reuse.configs.detection',
                         'backbone_reuse.configs.strategies',
                         'backbone_reuse.configs.schedule')
    cls.resolve = _start('backbone_reuse.configs.resolve')

  @classmethod
  def tearDownClass(cls):
    for process in (cls.configs, cls.resolve):
      if process.poll() is None:
        process.kill()
        process.communicate()
    super().tearDownClass()

  def test_configs_load_no_model_task_or_shapes_module(self):
    loaded = _loaded(self.configs)
    self.assertIn('backbone_reuse.configs.detection', loaded)
    bad = sorted(m for m in loaded
                 if _within(m, 'backbone_reuse.modeling')
                 or _within(m, 'backbone_reuse.tasks') or _within(m, SHAPES))
    self.assertEmpty(bad)

  def test_resolve_loads_no_registry_task_or_shapes_module(self):
    # Callers import the registry; the config resolver does not.
    loaded = _loaded(self.resolve)
    self.assertIn('backbone_reuse.configs.resolve', loaded)
    bad = sorted(m for m in loaded
                 if m == 'backbone_reuse.registry_imports'
                 or _within(m, 'backbone_reuse.tasks') or _within(m, SHAPES)
                 or _within(m, 'backbone_reuse.modeling'))
    self.assertEmpty(bad)

  def test_no_module_imports_a_command_line(self):
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
      module = _module(path)
      found += [f'{module} imports {i}' for i in sorted(_imports(path))
                if any(_within(i, c) for c in COMMAND_LINES)
                and not _within(i, module)]
    self.assertEmpty(found)

  def test_only_the_shapes_package_knows_the_shapes_world(self):
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
      module = _module(path)
      if _within(module, SHAPES) or module in MAY_IMPORT_SHAPES:
        continue
      found += [f'{module} imports {i}' for i in sorted(_imports(path))
                if _within(i, SHAPES)]
    self.assertEmpty(found)

  def test_the_scan_sees_imports(self):
    # The scan is not vacuous: it finds known imports of known modules.
    self.assertIn('backbone_reuse.data.tfrecord_check',
                  _imports(PACKAGE / 'preflight.py'))
    self.assertIn('backbone_reuse.shapes.experiments',
                  _imports(PACKAGE / 'registry_imports.py'))
    # Imports inside functions count too.
    self.assertIn('backbone_reuse.evaluation.lvis_metrics',
                  _imports(PACKAGE / 'evaluation' / 'files.py'))
    # Command lines are found by their __main__ block, library modules are
    # not taken for them.
    self.assertContainsSubset(
        {'backbone_reuse.train', 'backbone_reuse.demo',
         'backbone_reuse.tools.evaluate', 'backbone_reuse.data.coco_tfrecord',
         'backbone_reuse.shapes.grid', 'backbone_reuse.shapes.adapters_study'},
        COMMAND_LINES)
    self.assertNoCommonElements(
        {'backbone_reuse.training', 'backbone_reuse.shapes.grid_runner',
         'backbone_reuse.shapes.demo', 'backbone_reuse.data.coco_conversion'},
        COMMAND_LINES)


if __name__ == '__main__':
  tf.test.main()
