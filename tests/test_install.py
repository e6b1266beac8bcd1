"""A built (non-editable) install works from any directory: it carries the
YAMLs and the manifest (setup.py, backbone_reuse/package_data.py)."""
import os
import shlex
import subprocess
import sys

import pytest
import tensorflow as tf

import testing_utils


def _clean_environment(site: str):
  """The installed copy first on the path, run from outside the checkout."""
  environment = dict(os.environ, PYTHONPATH=site)
  environment.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  return environment


class BuiltInstallTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tf.compat.v1.test.get_temp_dir()
    cls.site = os.path.join(root, 'site')
    cls.elsewhere = os.path.join(root, 'elsewhere')
    os.makedirs(cls.elsewhere, exist_ok=True)
    # Our package only (its dependencies are this environment's), built as
    # a wheel would be: not editable, no link back to the checkout.
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
         '--no-build-isolation', f'--target={cls.site}',
         str(testing_utils.REPO)], check=True, capture_output=True)

  def _run(self, *argv):
    return subprocess.run([sys.executable, *argv], cwd=self.elsewhere,
                          env=_clean_environment(self.site),
                          capture_output=True, text=True)

  @pytest.mark.slow
  def test_the_installed_copy_finds_its_yamls_and_manifest(self):
    result = self._run('-c', 'import backbone_reuse.package_data as p, '
                       'backbone_reuse as b; print(b.__file__); '
                       'print(p.root())')
    self.assertEqual(result.returncode, 0, msg=result.stderr[-2000:])
    module, root = result.stdout.split()
    self.assertTrue(module.startswith(self.site), msg=module)
    self.assertEqual(root, os.path.join(self.site, 'backbone_reuse', '_data'))
    self.assertTrue(os.path.isfile(os.path.join(
        root, 'configs', 'strategies', 'freeze.yaml')))

  @pytest.mark.slow
  def test_reproduce_lists_and_dry_runs_from_another_directory(self):
    listed = self._run('-m', 'backbone_reuse.reproduce', '--entry=list')
    self.assertEqual(listed.returncode, 0, msg=listed.stderr[-2000:])
    self.assertIn('| table1/r101_fpn/scratch | Table 1 |', listed.stdout)
    model_dir = os.path.join(self.elsewhere, 'run')
    dry = self._run('-m', 'backbone_reuse.reproduce',
                    '--entry=table1/r101_fpn/imagenet_freeze', '--dry_run',
                    f'--model_dir={model_dir}')
    # The data and checkpoint are absent: preflight says so (exit 0 for a
    # dry run), after params.yaml was resolved from the installed YAMLs.
    self.assertIn('dry run:', dry.stdout + dry.stderr, msg=dry.stderr[-2000:])
    self.assertTrue(os.path.isfile(os.path.join(model_dir, 'params.yaml')))
    # The printed command names YAMLs that exist from here.
    command = [l for l in dry.stdout.splitlines()
               if l.startswith('python -m backbone_reuse.train')]
    self.assertLen(command, 1)
    # Parsed as a shell parses it: a path with characters the shell would
    # read otherwise (e.g. a temporary directory's) is printed quoted.
    files = [a.split('=', 1)[1] for a in shlex.split(command[0])
             if a.startswith('--config_file=')]
    self.assertLen(files, 3)
    for path in files:
      self.assertTrue(path.startswith(self.site), msg=path)
      self.assertTrue(os.path.isfile(path), msg=path)


if __name__ == '__main__':
  tf.test.main()
