"""Two workers on localhost: Model Garden's multi-worker mirrored strategy
trains a frozen tiny detector through `python -m backbone_reuse.train`. Both
workers get the same model dir, as the hosts of a multi-host run share one:
the chief checkpoints there, the other worker to a temporary directory, and
both checkpoints hold the classification checkpoint's backbone, bit for bit.
A second invocation to more steps resumes both workers from the chief's
checkpoint (training._Runner)."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

import testing_utils
from backbone_reuse.modeling import backbone_checkpoint

_EXPERIMENT = 'backbone_reuse_fasterrcnn_coco'
_WORKERS = 2


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _checkpoints(directory):
  """Checkpoint prefixes under `directory` (any depth), by step."""
  found = {}
  for root, _, files in os.walk(directory):
    for name in files:
      if name.startswith('ckpt-') and name.endswith('.index'):
        prefix = os.path.join(root, name[:-len('.index')])
        found[int(name[len('ckpt-'):-len('.index')])] = prefix
  return found


class TwoWorkersTest(tf.test.TestCase):

  def _train(self, directory, checkpoint, steps):
    """Both workers to `steps` in DIRECTORY/model; returns each worker's
    output. Each writes to a file: with pipes, the worker whose pipe is not
    being read blocks on a full buffer and the other waits for it in a
    collective, forever."""
    data = testing_utils.toy_data()
    ports = _free_ports(_WORKERS)
    cluster = {'worker': [f'127.0.0.1:{p}' for p in ports]}
    processes = []
    for index in range(_WORKERS):
      environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2',
                         CUDA_VISIBLE_DEVICES='',
                         # A non-chief worker checkpoints to a temporary
                         # directory (Model Garden's runner): keep it here.
                         TMPDIR=os.path.join(directory, f'tmp{index}'),
                         TF_CONFIG=json.dumps({
                             'cluster': cluster,
                             'task': {'type': 'worker', 'index': index}}))
      os.makedirs(environment['TMPDIR'], exist_ok=True)
      override = ','.join([
          'runtime.distribution_strategy=multi_worker_mirrored',
          f'task.init_checkpoint={checkpoint}',
          f'task.annotation_file={data["val_annotations"]}',
          f'task.train_data.input_path={data["train"]}',
          f'task.validation_data.input_path={data["val"]}',
          f'trainer.train_steps={steps}',
          'trainer.steps_per_loop=2', 'trainer.checkpoint_interval=2',
          'trainer.summary_interval=2'])
      log = open(os.path.join(directory, f'worker{index}_{steps}.log'), 'w')
      processes.append((log, subprocess.Popen(
          [sys.executable, '-m', 'backbone_reuse.train',
           f'--experiment={_EXPERIMENT}',
           '--config_file=configs/smoke/rcnn_tiny.yaml',
           '--config_file=configs/strategies/freeze.yaml',
           f'--params_override={override}', '--mode=train',
           f'--model_dir={os.path.join(directory, "model")}'],
          cwd=testing_utils.REPO, env=environment, stdout=log,
          stderr=subprocess.STDOUT)))
    outputs = []
    for log, process in processes:
      process.wait(timeout=1200)
      log.close()
      with open(log.name) as f:
        output = f.read()
      outputs.append(output)
      self.assertEqual(process.returncode, 0, msg=output[-3000:])
    return outputs

  def _assert_backbone_is(self, prefix, classifier):
    params = testing_utils.tiny_config(_EXPERIMENT)
    model = testing_utils.build_task(params).build_model()
    backbone_checkpoint.restore_detector(model, prefix)
    theirs = {path: v for path, v in backbone_checkpoint.variables_by_path(
        classifier.backbone).values()}
    ours = {path: v for path, v in backbone_checkpoint.variables_by_path(
        model.backbone).values()}
    self.assertEqual(set(ours), set(theirs))
    for path, variable in ours.items():  # Weights and BN statistics.
      self.assertAllEqual(variable.numpy(), theirs[path].numpy(),
                          msg=f'{prefix}: {path}')

  @pytest.mark.slow
  def test_two_workers_train_frozen_keep_the_backbone_and_resume(self):
    directory = self.get_temp_dir()
    probe = testing_utils.tiny_config(_EXPERIMENT)
    checkpoint, classifier = testing_utils.write_classification_checkpoint(
        probe.task.model, os.path.join(directory, 'classifier'), 'trainer')
    model_dir = os.path.join(directory, 'model')
    outputs = self._train(directory, checkpoint, steps=4)
    for output in outputs:  # Each process saw both workers.
      self.assertIn('MultiWorkerMirroredStrategy', output)
    chief = _checkpoints(model_dir)
    other = _checkpoints(os.path.join(directory, 'tmp1'))
    self.assertEqual(sorted(chief), [2, 4])
    self.assertEqual(max(other), 4)
    for prefix in (chief[4], other[4]):
      self._assert_backbone_is(prefix, classifier)
    # Only the chief writes the run's files, once.
    with open(os.path.join(model_dir, 'params.yaml')) as f:
      self.assertIn('multi_worker_mirrored', f.read())
    self.assertIn('Training resources written to', outputs[0])
    self.assertNotIn('Training resources written to', outputs[1])

    # To 6 steps: both workers resume at step 4, the non-chief from the
    # chief's checkpoint (before training._Runner it began again at step 0
    # and both workers exited 1 on a mismatched collective).
    outputs = self._train(directory, checkpoint, steps=6)
    self.assertIn(f"restoring the chief's checkpoint {chief[4]}", outputs[1])
    for output in outputs:  # Orbit logs where each loop starts and ends.
      logged = re.findall(r'^train \| step:\s+(\d+) \| (training until|steps)',
                          output, re.M)
      self.assertEqual(logged, [('4', 'training until'), ('6', 'steps')],
                       msg=output[-3000:])
    chief = _checkpoints(model_dir)
    other = _checkpoints(os.path.join(directory, 'tmp1'))
    self.assertEqual(max(chief), 6)
    self.assertEqual(max(other), 6)
    for prefix in (chief[6], other[6]):
      self._assert_backbone_is(prefix, classifier)


if __name__ == '__main__':
  tf.test.main()
