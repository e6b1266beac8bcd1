"""The demo end to end at a tiny scale: stages, summary, resume, recovery."""
import contextlib
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

from official.core import task_factory
from pycocotools import coco
import pytest
import tensorflow as tf

from backbone_reuse.evaluation import coco_metrics
from backbone_reuse.modeling import backbone_checkpoint
from backbone_reuse.shapes import demo
from backbone_reuse.shapes import stages

_TINY = demo.Scale(upstream_train=80, upstream_val=40, detection_train=40,
                   detection_val=40, upstream_steps=3, detector_steps=3)


def _run(output_dir, seed=0):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    summary = demo.Demo(output_dir, _TINY, seed).run()
  return summary, out.getvalue()


def assert_frozen_upstream(test: tf.test.TestCase, run: demo.Demo):
  """The detector's backbone weights equal the upstream checkpoint's."""
  params = run.detector_training().params()
  trained = task_factory.get_task(params.task).build_model()
  backbone_checkpoint.restore_detector(trained, run.path('detector'))
  upstream = task_factory.get_task(params.task).build_model()
  backbone_checkpoint.restore_backbone(upstream.backbone,
                                       run.path('upstream'))
  test.assertNotEmpty(trained.backbone.weights)
  for a, b in zip(trained.backbone.weights, upstream.backbone.weights):
    test.assertAllEqual(a, b, msg=a.name)


class DemoTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_bfloat16_runs_the_whole_demo_and_says_so(self):
    output_dir = os.path.join(self.get_temp_dir(), 'demo_bf16')
    run = demo.Demo(output_dir, _TINY, precision='bfloat16',
                    precision_reason='asked for')
    with contextlib.redirect_stdout(io.StringIO()):
      summary = run.run()
    self.assertEqual(summary['precision']['dtype'], 'bfloat16')
    for stage in ('upstream', 'detector'):
      with open(os.path.join(output_dir, stage, 'params.yaml')) as f:
        self.assertIn('mixed_precision_dtype: bfloat16', f.read())
    with open(os.path.join(output_dir, 'summary.md')) as f:
      self.assertIn('Precision: bfloat16 (asked for).', f.read())
    self.assertLen(summary['results']['box']['per_class'], 40)
    # Frozen in bfloat16 too: the detector's backbone is the upstream's.
    assert_frozen_upstream(self, run)
    # Another precision is another stage identity: nothing is reused.
    self.assertNotEqual(run.identity('detector'),
                        demo.Demo(output_dir, _TINY).identity('detector'))

  @pytest.mark.slow
  def test_the_vit_backbone_runs_the_whole_demo(self):
    output_dir = os.path.join(self.get_temp_dir(), 'demo_vit')
    run = demo.Demo(output_dir, _TINY, backbone='vit')
    with contextlib.redirect_stdout(io.StringIO()):
      summary = run.run()
    self.assertEqual(summary['backbone'], 'vit')
    for stage in ('upstream', 'detector'):
      with open(os.path.join(output_dir, stage, 'params.yaml')) as f:
        self.assertIn('type: plain_vit', f.read(), msg=stage)
    with open(os.path.join(output_dir, 'summary.md')) as f:
      self.assertIn('Backbone: plain ViT (4 blocks) + simple feature '
                    'pyramid.', f.read())
    self.assertLen(summary['results']['box']['per_class'], 40)
    # Frozen: the detector's ViT is the upstream's (its position embedding
    # resized from 8x8 to 16x16 patches the same way on both sides).
    assert_frozen_upstream(self, run)
    self.assertNotEqual(run.identity('upstream'),
                        demo.Demo(output_dir, _TINY).identity('upstream'))

  def test_an_unknown_backbone_is_refused(self):
    with self.assertRaisesRegex(
        ValueError, r"--backbone='swin'; accepted: resnet, vit\."):
      demo.Demo(self.get_temp_dir(), _TINY, backbone='swin')

  @pytest.mark.slow
  def test_cli_refuses_an_unknown_precision(self):
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.demo', '--precision=fp16',
         f'--output_dir={self.get_temp_dir()}/refused'],
        capture_output=True, text=True, check=False, timeout=300)
    self.assertEqual(result.returncode, 2, msg=result.stderr[-2000:])
    self.assertIn("error: --precision='fp16'; accepted: auto, float32, "
                  'bfloat16', result.stderr)
    self.assertFalse(os.path.exists(f'{self.get_temp_dir()}/refused'))

  def test_unknown_scale_is_refused(self):
    result = subprocess.run(
        [sys.executable, '-m', 'backbone_reuse.demo', '--scale=huge',
         f'--output_dir={self.get_temp_dir()}/never'],
        capture_output=True, text=True, check=False)
    self.assertNotEqual(result.returncode, 0)
    # The refusal names the value and every scale the demo has (the words
    # around them are absl's).
    (error,) = [line for line in result.stderr.splitlines()
                if '--scale=huge' in line]
    for scale in demo.SCALES:
      self.assertIn(scale, error)
    self.assertFalse(os.path.exists(f'{self.get_temp_dir()}/never'))

  def test_unwritable_output_dir_is_refused(self):
    blocker = os.path.join(self.get_temp_dir(), 'a_file')
    with open(blocker, 'w') as f:
      f.write('not a directory')
    with self.assertRaisesRegex(SystemExit, 'is not writable'):
      demo.Demo(os.path.join(blocker, 'demo'), _TINY).run()


@pytest.mark.slow
class DemoRunTest(tf.test.TestCase):
  """The demo run once for the class (seed 0); each scenario of resuming
  and recovering works on a copy of its output."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.output_dir = os.path.join(cls.root, 'demo')
    cls.summary, cls.printed = _run(cls.output_dir)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def _copy(self) -> str:
    copy = os.path.join(self.get_temp_dir(), 'demo')
    shutil.copytree(self.output_dir, copy)
    return copy

  def test_a_run_writes_the_metrics_of_its_detections(self):
    output_dir, summary = self.output_dir, self.summary
    for stage in ('data', 'upstream', 'detector', 'evaluate'):
      self.assertIn(f'[{stage}] finished in', self.printed)
    self.assertTrue(os.path.isfile(os.path.join(output_dir, 'summary.md')))
    with open(os.path.join(output_dir, 'summary.json')) as f:
      written = json.load(f)
    self.assertEqual(written['results'], summary['results'])
    box = summary['results']['box']
    self.assertLen(box['per_class'], 40)
    self.assertNotIn('mask', summary['results'])  # A box-only detector.
    # The reported metrics are those of the written detections.
    with open(os.path.join(output_dir, 'evaluate', 'detections.json')) as f:
      detections = json.load(f)
    again = coco_metrics.evaluate(
        coco.COCO(os.path.join(output_dir, 'data', 'detection', 'val',
                               'annotations.json')), detections, 'bbox')
    self.assertEqual(again['AP'], box['AP'])
    self.assertEqual(again['APr'], box['APr'])
    self.assertIn('accuracy', summary['upstream'])
    self.assertTrue(os.path.isfile(summary['predictions_png']))
    self.assertGreater(summary['peak_rss_mb'], 0)
    with open(os.path.join(output_dir, 'summary.md')) as f:
      self.assertIn('| APr |', f.read())

  def test_the_detectors_backbone_is_the_upstream_bit_for_bit(self):
    # Frozen through training and restored into the evaluated model.
    assert_frozen_upstream(self, demo.Demo(self.output_dir, _TINY))

  def test_a_rerun_reuses_every_verified_stage(self):
    _, printed = _run(self._copy())
    self.assertEqual(printed.count('done in an earlier run'), 4)
    self.assertNotIn('finished in', printed)

  def test_a_half_written_checkpoint_redoes_its_stage_and_the_next(self):
    output_dir = self._copy()
    detector_dir = os.path.join(output_dir, 'detector')
    data_file = tf.io.gfile.glob(
        tf.train.latest_checkpoint(detector_dir) + '.data*')[0]
    with open(data_file, 'r+b') as f:
      f.truncate(os.path.getsize(data_file) // 2)
    _, printed = _run(output_dir)
    self.assertIn('[detector] earlier result is unusable', printed)
    self.assertIn('[detector] finished in', printed)
    self.assertIn('[evaluate] finished in', printed)
    self.assertIn('[upstream] done in an earlier run', printed)

  def test_a_truncated_tfrecord_regenerates_the_world_and_redoes_all(self):
    output_dir = self._copy()
    record = tf.io.gfile.glob(
        os.path.join(output_dir, 'data', 'detection', 'train-*'))[0]
    with open(record, 'r+b') as f:
      f.truncate(os.path.getsize(record) - 100)
    _, printed = _run(output_dir)
    self.assertIn('[data] earlier result is unusable', printed)
    for stage in ('data', 'upstream', 'detector', 'evaluate'):
      self.assertIn(f'[{stage}] finished in', printed)

  def test_another_seed_is_another_world_and_other_runs(self):
    output_dir = self._copy()
    summary, printed = _run(output_dir, seed=1)
    self.assertIn("[data] earlier result is unusable (generated with seed 0, "
                  "this run's is 1)", printed)
    for stage in ('data', 'upstream', 'detector', 'evaluate'):
      self.assertIn(f'[{stage}] finished in', printed)
    self.assertEqual(summary['seed'], 1)
    with open(os.path.join(output_dir, 'detector', 'params.yaml')) as f:
      self.assertIn('seed: 1', f.read())

  def test_a_longer_schedule_redoes_the_detector_only(self):
    # Its checkpoint at the old final step would verify; the world and the
    # upstream are reused.
    output_dir = self._copy()
    longer = dataclasses.replace(_TINY, detector_steps=_TINY.detector_steps + 1)
    with contextlib.redirect_stdout(io.StringIO()) as out:
      demo.Demo(output_dir, longer).run()
    printed = out.getvalue()
    for stage in ('data', 'upstream'):
      self.assertIn(f'[{stage}] done in an earlier run', printed)
    self.assertIn('[detector] earlier result was made with another '
                  'configuration', printed)
    self.assertIn('[evaluate] finished in', printed)
    self.assertIsNone(stages.verify_checkpoint(
        os.path.join(output_dir, 'detector'), longer.detector_steps))


if __name__ == '__main__':
  tf.test.main()
