"""Paired differences across seeds: mean, 95 % interval, and a verdict.

A claim such as "freezing beats fine-tuning" is checked on the per-seed
differences d_i = a_i - b_i of two settings run with the same seeds. The
interval is Student's t interval of the mean difference; the verdict follows
from where it lies relative to 0, given the sign the claim expects.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

from scipy import stats

REPRODUCED = 'reproduced'
CONTRADICTED = 'contradicted'
INCONCLUSIVE = 'inconclusive'


def _mean_sd(values: Sequence[float]) -> Tuple[float, float]:
  """Mean and sample standard deviation (n - 1) of at least 2 values."""
  mean = sum(values) / len(values)
  return mean, math.sqrt(sum((v - mean) ** 2 for v in values) /
                         (len(values) - 1))


def _half_width(sd: float, n: int, confidence: float) -> float:
  """Half the t interval of a mean of n values with this spread."""
  return stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)


def paired_interval(a: Sequence[float], b: Sequence[float],
                    confidence: float = 0.95) -> Dict:
  """Mean and t interval of a - b, paired by position (seed).

  Args:
    a: per-seed values of one setting.
    b: the other setting's values for the same seeds, in the same order.
    confidence: the interval's coverage.

  Returns:
    {'n', 'differences', 'difference_mean', 'interval'}; `interval` is None
    for fewer than 2 pairs (no spread to estimate).

  Raises:
    ValueError: if a and b differ in length or are empty.
  """
  if len(a) != len(b) or not a:
    raise ValueError(f'paired values need the same seeds on both sides; got '
                     f'{len(a)} and {len(b)} values.')
  differences = [x - y for x, y in zip(a, b)]
  n = len(differences)
  mean = sum(differences) / n
  interval = None
  if n > 1:
    _, sd = _mean_sd(differences)
    half = _half_width(sd, n, confidence)
    interval = [mean - half, mean + half]
  return {'n': n, 'differences': differences, 'difference_mean': mean,
          'interval': interval}


def verdict(interval: Optional[Sequence[float]], expected_sign: int) -> str:
  """REPRODUCED if the interval lies on the side of 0 the claim expects,
  CONTRADICTED if on the other side, else INCONCLUSIVE.

  Args:
    interval: [lo, hi] of the difference, or None (a single pair).
    expected_sign: +1 if the claim says the difference is positive, -1 if
      negative.
  """
  if expected_sign not in (1, -1):
    raise ValueError(f'expected_sign={expected_sign}; accepted: 1 or -1.')
  if interval is None:
    return INCONCLUSIVE
  lo, hi = (expected_sign * v for v in interval)
  lo, hi = min(lo, hi), max(lo, hi)
  if lo > 0:
    return REPRODUCED
  if hi < 0:
    return CONTRADICTED
  return INCONCLUSIVE


def seeds_needed(differences: Sequence[float], confidence: float = 0.95,
                 limit: int = 1000) -> Optional[int]:
  """How many seeds a paired t interval needs to exclude 0, were the mean
  and standard deviation what `differences` measured.

  The smallest n >= 2 with t_{n-1} * sd / sqrt(n) < |mean|, where t_{n-1} is
  the two-sided quantile at `confidence`.

  Args:
    differences: the measured per-seed differences (at least 2).
    confidence: the interval's coverage.
    limit: the largest n searched.

  Returns:
    n, or None if the differences cannot say (fewer than 2, or a mean of 0)
    or no n up to `limit` would do.
  """
  if len(differences) < 2:
    return None
  mean, sd = _mean_sd(differences)
  if mean == 0:
    return None
  for seeds in range(2, limit + 1):
    if _half_width(sd, seeds, confidence) < abs(mean):
      return seeds
  return None
