"""Paired intervals and verdicts on fixed inputs, checked by hand."""
from absl.testing import parameterized
import tensorflow as tf

from backbone_reuse.analysis import intervals


class PairedIntervalTest(tf.test.TestCase, parameterized.TestCase):

  def test_hand_computed_interval(self):
    # d = [2.0, 2.5, 3.0, 2.5]: mean 2.5, sd sqrt(0.5 / 3) = 0.408248,
    # standard error 0.204124, t(0.975, 3 df) = 3.182446, half-width
    # 0.649614.
    result = intervals.paired_interval([12.0, 12.5, 13.0, 12.5],
                                       [10.0, 10.0, 10.0, 10.0])
    self.assertEqual(result['n'], 4)
    self.assertAllClose(result['differences'], [2.0, 2.5, 3.0, 2.5])
    self.assertAllClose(result['difference_mean'], 2.5)
    self.assertAllClose(result['interval'], [1.850386, 3.149614], atol=1e-6)

  def test_three_seeds_wide_interval(self):
    # d = [1, 2, 3]: mean 2, sd 1, t(0.975, 2 df) = 4.302653, half-width
    # 4.302653 / sqrt(3) = 2.484138.
    result = intervals.paired_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    self.assertAllClose(result['interval'], [-0.484138, 4.484138], atol=1e-6)
    self.assertEqual(intervals.verdict(result['interval'], +1),
                     intervals.INCONCLUSIVE)

  def test_single_pair_has_no_interval(self):
    result = intervals.paired_interval([3.0], [1.0])
    self.assertEqual((result['difference_mean'], result['interval']),
                     (2.0, None))
    self.assertEqual(intervals.verdict(None, +1), intervals.INCONCLUSIVE)

  @parameterized.parameters(
      ([1.85, 3.15], +1, intervals.REPRODUCED),
      ([1.85, 3.15], -1, intervals.CONTRADICTED),
      ([-3.15, -1.85], -1, intervals.REPRODUCED),
      ([-3.15, -1.85], +1, intervals.CONTRADICTED),
      ([-0.5, 4.5], +1, intervals.INCONCLUSIVE),
      ([0.0, 4.5], +1, intervals.INCONCLUSIVE),  # Touching 0 is not enough.
  )
  def test_verdict(self, interval, sign, expected):
    self.assertEqual(intervals.verdict(interval, sign), expected)

  def test_refusals(self):
    with self.assertRaisesRegex(ValueError, 'same seeds on both sides; got '
                                '2 and 3 values'):
      intervals.paired_interval([1.0, 2.0], [1.0, 2.0, 3.0])
    with self.assertRaisesRegex(ValueError, 'expected_sign=0'):
      intervals.verdict([1.0, 2.0], 0)


if __name__ == '__main__':
  tf.test.main()
