"""The cost estimate (analysis/estimate.py, `reproduce --estimate`): no data
or checkpoint read, frozen cheaper than fine-tuned, the arithmetic of steps,
replicas and hours, and the saved-activation count on a graph worked by hand.
"""
import math

import pytest
import tensorflow as tf
import tf_keras

import testing_utils
from backbone_reuse import errors
from backbone_reuse import manifest
from backbone_reuse import registry_imports  # pylint: disable=unused-import
from backbone_reuse import reproduce
from backbone_reuse.analysis import estimate
from backbone_reuse.configs import resolve

_SMOKE = 'configs/smoke/rcnn_tiny.yaml'
# Paths that do not exist: the estimate must read neither.
_NOWHERE = ('task.init_checkpoint=/nonexistent/ckpt,'
            'task.train_data.input_path=/nonexistent/train-*')


def _params(strategy: str, extra: str = ''):
  return resolve.experiment_config(
      'backbone_reuse_fasterrcnn_coco',
      [_SMOKE, f'configs/strategies/{strategy}.yaml'],
      ','.join(filter(None, [_NOWHERE, extra])), root=str(testing_utils.REPO))


def _entry(entry_id: str, strategy: str) -> dict:
  return {'id': entry_id, 'table': 'test', 'row': entry_id,
          'experiment': 'backbone_reuse_fasterrcnn_coco',
          'config_files': [_SMOKE, f'configs/strategies/{strategy}.yaml'],
          'params_override': _NOWHERE}


class SavedActivationsTest(tf.test.TestCase):

  def test_counts_what_the_backward_pass_reads(self):
    # loss = sum(relu(x @ w)): ReluGrad reads relu's output (1x3 float32,
    # 12 bytes); MatMul's gradient for w reads x, the input (left out, as
    # the input batch is), and w itself (a weight). Nothing else is saved.
    w = tf.Variable(tf.ones([4, 3]))

    @tf.function
    def step(x):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.relu(tf.matmul(x, w)))
      w.assign_sub(tape.gradient(loss, w))

    graph = step.get_concrete_function(
        tf.TensorSpec([1, 4], tf.float32)).graph
    self.assertEqual(estimate.saved_activation_bytes(graph),
                     {'bytes': 12, 'unknown': 0})

  def test_memory_parts_add_up(self):
    model = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,)),
                                 tf_keras.layers.Dense(2)])
    model.layers[0].trainable = False
    optimizer = tf_keras.optimizers.SGD(momentum=0.9)
    optimizer.build(model.trainable_variables)
    memory = estimate.memory_bytes(model, optimizer, activations_per_image=10,
                                   images_per_replica=3)
    # Weights: (4*3 + 3) + (3*2 + 2) floats; the second layer trains.
    self.assertEqual(memory['weights'], 4 * (15 + 8))
    self.assertEqual(memory['gradients'], 4 * 8)
    self.assertEqual(memory['optimizer'], 4 * 8)  # One momentum slot each.
    self.assertEqual(memory['activations'], 30)
    self.assertEqual(memory['total'], 4 * 23 + 32 + 32 + 30)


class EstimateTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.cache = {}
    cls.freeze = estimate.estimate(_params('freeze'), tflops=2.0, replicas=1,
                                   cache=cls.cache)
    cls.finetune = estimate.estimate(_params('finetune'), tflops=2.0,
                                     replicas=1, cache=cls.cache)

  @pytest.mark.slow
  def test_freezing_trains_less_and_costs_less(self):
    frozen, tuned = self.freeze, self.finetune
    self.assertEqual(frozen['parameters']['total'],
                     tuned['parameters']['total'])
    self.assertLess(frozen['parameters']['trained'],
                    tuned['parameters']['trained'] / 5)
    # No backward pass through the backbone.
    self.assertLess(frozen['flops_per_image']['backward'],
                    tuned['flops_per_image']['backward'] / 2)
    frozen_memory = frozen['memory_per_replica_bytes']
    tuned_memory = tuned['memory_per_replica_bytes']
    self.assertEqual(frozen_memory['weights'], tuned_memory['weights'])
    for part in ('gradients', 'optimizer', 'activations', 'total'):
      self.assertLess(frozen_memory[part], tuned_memory[part], part)

  @pytest.mark.slow
  def test_the_schedule_batch_and_throughput_scale_the_cost(self):
    # What the cost does when the run changes, not its formulas restated.
    # None of these changes is traced again: a trace is per image.
    params = _params('freeze')
    steps = params.trainer.train_steps
    batch = params.task.train_data.global_batch_size
    base = self.freeze
    traces = len(self.cache)
    longer = estimate.estimate(
        _params('freeze', f'trainer.train_steps={2 * steps}'), tflops=2.0,
        replicas=1, cache=self.cache)
    bigger = estimate.estimate(
        _params('freeze', f'task.train_data.global_batch_size={2 * batch}'),
        tflops=2.0, replicas=1, cache=self.cache)
    faster = estimate.estimate(params, tflops=4.0, replicas=1,
                               cache=self.cache)
    self.assertLen(self.cache, traces)
    for cost in (longer, bigger, faster):
      self.assertEqual(cost['flops_per_image'], base['flops_per_image'])
    # Twice the steps: twice the work and the hours, the same step.
    self.assertEqual(longer['flops_per_step'], base['flops_per_step'])
    self.assertEqual(longer['total_flops'], 2 * base['total_flops'])
    self.assertTrue(math.isclose(longer['accelerator_hours'],
                                 2 * base['accelerator_hours']))
    self.assertEqual(longer['memory_per_replica_bytes'],
                     base['memory_per_replica_bytes'])
    # Twice the batch: twice each step, the work and the activations held;
    # the weights, gradients and optimizer slots are the same.
    self.assertEqual(bigger['flops_per_step'], 2 * base['flops_per_step'])
    self.assertEqual(bigger['total_flops'], 2 * base['total_flops'])
    memory = base['memory_per_replica_bytes']
    more = bigger['memory_per_replica_bytes']
    self.assertEqual(more['activations'], 2 * memory['activations'])
    for part in ('weights', 'gradients', 'optimizer'):
      self.assertEqual(more[part], memory[part], part)
    # Twice the accelerator's rate: half the hours for the same work.
    self.assertEqual(faster['total_flops'], base['total_flops'])
    self.assertTrue(math.isclose(faster['accelerator_hours'],
                                 base['accelerator_hours'] / 2))

  @pytest.mark.slow
  def test_replicas_split_the_activations_only(self):
    traces = len(self.cache)
    halves = estimate.estimate(_params('freeze'), tflops=2.0, replicas=2,
                               cache=self.cache)
    self.assertLen(self.cache, traces)  # Served from the cache.
    whole = self.freeze['memory_per_replica_bytes']
    half = halves['memory_per_replica_bytes']
    self.assertEqual(half['activations'] * 2, whole['activations'])
    self.assertEqual(half['weights'], whole['weights'])
    self.assertEqual(halves['total_flops'], self.freeze['total_flops'])

  @pytest.mark.slow
  def test_a_trace_in_its_own_process_costs_the_same(self):
    # reproduce traces each config in a spawned process (registry given):
    # the costs are the ones traced here.
    isolated = estimate.estimate(_params('freeze'), tflops=2.0, replicas=1,
                                 registry=registry_imports.__name__)
    self.assertEqual(isolated, self.freeze)

  @pytest.mark.slow
  def test_refuses_a_rate_it_cannot_use(self):
    # (Replicas that do not divide the batch: the CLI test below.)
    with self.assertRaisesRegex(ValueError, r'--tflops=0.0; accepted'):
      estimate.estimate(_params('freeze'), tflops=0.0)

  @pytest.mark.slow
  def test_reproduce_prints_the_row_and_its_twin(self):
    entries = {'smoke/freeze': _entry('smoke/freeze', 'freeze'),
               'smoke/finetune': _entry('smoke/finetune', 'finetune')}
    traced = {}  # Each config traced once across the calls (a process each).
    lines = reproduce.estimate_lines(entries, 'smoke/freeze', 2.0, 1, traced)
    text = '\n'.join(lines)
    self.assertIn('smoke/freeze (freeze):', text)
    self.assertIn('smoke/freeze, twin (finetune):', text)
    self.assertIn('accelerator hours at 2 TFLOP/s', text)
    table = reproduce.estimate_lines(entries, 'smoke/*', 2.0, 1, traced)
    self.assertEqual(table[0], estimate.TABLE_HEADER)
    rows = [l.split(' | ')[0] for l in table if l.startswith('| smoke/')]
    # Each entry's twin is the other entry: listed once each.
    self.assertEqual(rows, ['| smoke/freeze', '| smoke/finetune'])
    entries['smoke/scratch'] = dict(
        _entry('smoke/scratch', 'scratch'),
        params_override='task.train_data.input_path=/nonexistent/train-*')
    table = reproduce.estimate_lines(entries, 'smoke/*', 2.0, 1, traced)
    rows = [l.split(' | ')[0] for l in table if l.startswith('| smoke/')]
    # scratch's twin (freeze from a checkpoint) is no selected entry.
    self.assertEqual(rows, ['| smoke/freeze', '| smoke/finetune',
                            '| smoke/scratch', '| smoke/scratch, twin'])
    with self.assertRaisesRegex(errors.BadInput, "--entry='smoke/nope' is "
                                'not in'):
      reproduce.estimate_lines(entries, 'smoke/nope', 2.0, 1)


class TwinTest(tf.test.TestCase):

  @pytest.mark.slow
  def test_every_strategy_row_has_the_other_way_as_twin(self):
    entries = manifest.load()
    for entry in entries.values():
      twin = manifest.twin(entry)
      strategy = reproduce.plan(entry, '/unused').params.task.backbone_strategy
      if twin is None:
        self.assertFalse(any(f.startswith(manifest.STRATEGY_DIR)
                             for f in entry['config_files']), entry['id'])
        continue
      twin_strategy = reproduce.plan(
          twin, '/unused').params.task.backbone_strategy
      expected = 'freeze' if strategy in ('finetune', 'scratch') else (
          'finetune')
      self.assertEqual(twin_strategy, expected, entry['id'])

  def test_the_cli_refuses_replicas_that_do_not_divide_the_batch(self):
    result = testing_utils.run_module(
        'backbone_reuse.reproduce', '--entry=table1/r101_fpn/imagenet_freeze',
        '--estimate', '--replicas=3')
    self.assertEqual(result.returncode, errors.BAD_INPUT_EXIT_CODE)
    self.assertEqual(testing_utils.error_lines(result), [
        "error: --entry='table1/r101_fpn/imagenet_freeze': --replicas=3 does "
        'not divide task.train_data.global_batch_size=64; accepted: a '
        'divisor of it.'])


if __name__ == '__main__':
  tf.test.main()
