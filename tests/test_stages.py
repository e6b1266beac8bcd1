"""Resumable stages: reuse only a verified result made with the same
identity (the grid's config key)."""
import os

import tensorflow as tf

from backbone_reuse.shapes import stages


class RunStageTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.directory = os.path.join(self.get_temp_dir(), 'stage')
    self.calls = []

  def _run(self, identity, resumable=True):
    def work():
      self.calls.append(identity)
      # What the work found left in its directory (a resumed checkpoint).
      leftover = os.path.join(self.directory, 'partial')
      found = os.path.exists(leftover)
      with open(leftover, 'w') as f:
        f.write(identity)
      return {'identity_seen': identity, 'found_partial': found}
    return stages.run_stage(self.directory, 'stage', 'work', work,
                            lambda marker: None, resumable=resumable,
                            identity=identity)

  def test_same_identity_is_reused(self):
    self._run('a')
    marker = self._run('a')
    self.assertTrue(marker['skipped'])
    self.assertEqual(self.calls, ['a'])

  def test_other_identity_redoes_a_finished_stage(self):
    self._run('a')
    marker = self._run('b')
    self.assertNotIn('skipped', marker)
    self.assertEqual(marker['identity_seen'], 'b')
    self.assertFalse(marker['found_partial'])
    self.assertEqual(self.calls, ['a', 'b'])

  def test_interrupted_stage_resumes_only_under_its_identity(self):
    # An interrupted run: its directory and partial work, no marker.
    os.makedirs(self.directory)
    with open(os.path.join(self.directory, stages.IDENTITY), 'w') as f:
      f.write('a')
    with open(os.path.join(self.directory, 'partial'), 'w') as f:
      f.write('a')
    self.assertTrue(self._run('a')['found_partial'])
    os.remove(os.path.join(self.directory, stages.MARKER))
    self.assertFalse(self._run('b')['found_partial'])

  def test_directory_without_identity_is_redone(self):
    os.makedirs(self.directory)
    with open(os.path.join(self.directory, 'partial'), 'w') as f:
      f.write('?')
    self.assertFalse(self._run('a')['found_partial'])


if __name__ == '__main__':
  tf.test.main()
