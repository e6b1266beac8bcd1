"""The Shapes grid's claims: seeds needed, the schedule-length study's
claims, and paper values read from the manifest."""
import math

from scipy import stats
import tensorflow as tf

from backbone_reuse import manifest
from backbone_reuse.analysis import intervals
from backbone_reuse.shapes import claims


def _record(strategy, upstream, ap, seed, steps=None):
  return {'run': {'capacity': 'nasfpn_cascade', 'strategy': strategy,
                  'upstream': upstream, 'seed': seed, 'steps': steps},
          'results': {'box': {'AP': ap, 'APr': ap, 'APf': ap}}}


class SeedsNeededTest(tf.test.TestCase):

  def test_hand_computed(self):
    # Mean 2, sd sqrt(2). t_{n-1} sqrt(2) / sqrt(n) against 2: n = 4 gives
    # 3.182446 * 1.414214 / 2 = 2.2503 (not below 2); n = 5 gives
    # 2.776445 * 1.414214 / 2.236068 = 1.7560.
    self.assertEqual(intervals.seeds_needed([1.0, 3.0]), 5)
    # Mean 2, sd sqrt(2/3) = 0.816497: n = 3 gives 4.302653 * 0.816497 /
    # 1.732051 = 2.0283 (not below 2), n = 4 gives 1.2992.
    self.assertEqual(intervals.seeds_needed([3.0, 1.0, 2.0, 2.0]), 4)
    # Sign does not matter; a spread of 0 needs the minimum.
    self.assertEqual(intervals.seeds_needed([-1.0, -3.0]), 5)
    self.assertEqual(intervals.seeds_needed([2.0, 2.0]), 2)

  def test_what_cannot_say(self):
    self.assertIsNone(intervals.seeds_needed([1.0]))
    self.assertIsNone(intervals.seeds_needed([1.0, -1.0]))
    # A mean far below the spread: more than the limit.
    self.assertIsNone(intervals.seeds_needed([10.0, -9.9], limit=50))

  def test_the_smallest_count_whose_interval_excludes_zero(self):
    differences = [1.3, 3.3, -0.1]  # The first grid's Cascade claim.
    needed = intervals.seeds_needed(differences)
    self.assertEqual(needed, 8)
    mean = sum(differences) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)

    def half(n):
      return stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    self.assertLess(half(needed), abs(mean))
    self.assertGreaterEqual(half(needed - 1), abs(mean))


class ScheduleClaimsTest(tf.test.TestCase):

  def _records(self):
    # Per seed (grid schedule -> long): finetune large 0.40 -> 0.42, small
    # 0.30 -> 0.38; freeze large 0.41 -> 0.46, small 0.32 -> 0.35.
    records = []
    for seed, jitter in ((3, 0.0), (4, 0.01), (5, -0.01)):
      for strategy, upstream, short, long in (
          ('finetune', 'large', 0.40, 0.42), ('finetune', 'small', 0.30, 0.38),
          ('freeze', 'large', 0.41, 0.46), ('freeze', 'small', 0.32, 0.35)):
        records.append(_record(strategy, upstream, short + jitter, seed))
        records.append(_record(strategy, upstream, long + 2 * jitter, seed,
                               steps=3000))
    return records

  def test_differences_of_the_schedule_claims(self):
    found = {c['claim']: c for c in claims.claims(self._records())}

    def claim(start):
      (match,) = [c for text, c in found.items() if text.startswith(start)]
      return match

    # (freeze - finetune) long minus short: (0.46 - 0.42) - (0.41 - 0.40) =
    # +3 AP, the jitter cancels.
    widens = claim('Longer training widens the gap')
    self.assertEqual(widens['seeds'], [3, 4, 5])
    self.assertAllClose(widens['differences'], [3.0, 3.0, 3.0])
    self.assertEqual(widens['verdict'], 'reproduced')
    # Finetune's upstream benefit: long 0.04, short 0.10: -6 (sign -1).
    finetune = claim('With longer training a larger upstream helps '
                     'fine-tuning less')
    self.assertAllClose(finetune['differences'], [-6.0, -6.0, -6.0])
    self.assertEqual(finetune['verdict'], 'reproduced')
    # Freeze's: long 0.11, short 0.09: +2.
    freeze = claim('With longer training freezing keeps the larger')
    self.assertAllClose(freeze['differences'], [2.0, 2.0, 2.0])
    contrast = claim('With longer training freezing keeps more')
    self.assertAllClose(contrast['differences'], [8.0, 8.0, 8.0])
    # The grid-schedule claims ignore the long runs.
    upstream = claim('A larger upstream helps freezing more')
    self.assertAllClose(upstream['differences'], [-1.0, -1.0, -1.0])
    # Equal differences on every seed: 2 seeds would decide each.
    for c in (widens, finetune, freeze, contrast, upstream):
      self.assertEqual(c['seeds_needed'], 2)

  def test_the_schedule_column_names_each_claims_steps(self):
    at_l = [_record(strategy, 'large', 0.5, seed, steps=12000)
            for seed in (3, 4) for strategy in ('freeze', 'finetune')]
    # Two longer schedules would share the LONG cells: refused.
    with self.assertRaisesRegex(ValueError, r'2 longer schedules \(\[3000, '
                                r'12000\]\)'):
      claims.claims(self._records() + at_l)
    found = claims.claims(self._records())
    rows = {c['claim']: row for c, row in zip(
        found, claims.table(found, grid_steps=1500).splitlines()[2:])}
    self.assertIn('| 1,500 vs 3,000 |',
                  rows[claims.CLAIMS[8]['claim']])
    self.assertIn('| 1,500 |', rows[claims.CLAIMS[0]['claim']])
    # Without the grid's step count, its schedule is named as such.
    self.assertIn("| the grid's |", claims.table(found[:1]))
    (at_long,) = [c for c in claims.at_steps(self._records() + at_l, 12000)
                  if c['claim'] == claims.CLAIMS[0]['claim']]
    self.assertEqual(at_long['seeds'], [3, 4])
    self.assertIn('| 12,000 |', claims.table([at_long], grid_steps=1500))

  def test_a_claim_without_its_long_cells_is_absent(self):
    records = [r for r in self._records() if not r['run']['steps']]
    texts = [c['claim'] for c in claims.claims(records)]
    self.assertEmpty([t for t in texts if 'longer training' in t.lower()])


class UpstreamPairingTest(tf.test.TestCase):

  def _claim(self, found, start):
    (claim,) = [c for c in found if c['claim'].startswith(start)]
    return claim

  def test_runs_of_one_seed_from_different_checkpoints_are_named(self):
    records = ScheduleClaimsTest()._records()
    for record in records:
      record['upstream_checkpoint'] = f"{record['run']['upstream']}-" + (
          f"s{record['run']['seed']}")
    # Seed 4's long large-upstream runs started from a retrained upstream;
    # seed 5's adapters run carries no digest (an older record).
    for record in records:
      run = record['run']
      if (run['seed'], run['upstream'], run['steps']) == (4, 'large', 3000):
        record['upstream_checkpoint'] = 'large-s4-retrained'
    records.append(_record('adapters', 'large', 0.43, 5))
    found = claims.claims(records)
    self.assertEqual(self._claim(found, 'Longer training widens')[
        'upstream_mismatch'], {4: claims.DIFFERENT})
    # The grid-schedule claims pair runs that share each checkpoint.
    self.assertEqual(self._claim(found, 'With enough capacity')[
        'upstream_mismatch'], {})
    self.assertEqual(self._claim(found, 'Residual adapters')[
        'upstream_mismatch'], {5: claims.UNKNOWN})
    text = claims.table(found)
    self.assertIn('s4 different', text)
    self.assertIn('s5 unknown', text)

  def test_no_digests_at_all_is_not_flagged(self):
    found = claims.claims(ScheduleClaimsTest()._records())
    self.assertTrue(all(not c['upstream_mismatch'] for c in found))
    self.assertNotIn('did not start from one upstream', claims.table(found))


class PaperValuesTest(tf.test.TestCase):

  def test_values_come_from_the_manifest(self):
    entries = manifest.load()
    (cascade,) = [c for c in claims.CLAIMS
                  if c['claim'].startswith('With enough capacity')]
    # Table 1: 51.8 - 51.1 (ImageNet), 52.8 - 51.1 (JFT-300M).
    self.assertEqual(claims.paper_values(cascade, entries),
                     {'ImageNet': 0.7, 'JFT-300M': 1.7})
    # A changed manifest number changes the claim's paper value.
    entries = {k: dict(v) for k, v in entries.items()}
    entry = 'table1/r101_nasfpn_cascade/imagenet_freeze'
    entries[entry]['paper'] = dict(entries[entry]['paper'], box_ap=52.0)
    self.assertEqual(claims.paper_values(cascade, entries)['ImageNet'], 0.9)
    self.assertIn('+0.9 (ImageNet)', claims.paper_text(cascade, entries))

  def test_every_claim_resolves_against_the_manifest(self):
    entries = manifest.load()
    for claim in claims.CLAIMS:
      claims.paper_text(claim, entries)  # Raises on a missing entry or key.

  def test_a_missing_number_is_named(self):
    with self.assertRaisesRegex(KeyError, "'table2/he_jft_long' has no paper "
                                "'box_apr'; it has: box_ap"):
      manifest.paper_number(manifest.load(), 'table2/he_jft_long', 'box_apr')


class DecidedTest(tf.test.TestCase):

  def test_words(self):
    self.assertEqual(claims.decided({'seeds': [0, 1, 2], 'seeds_needed': 8,
                                     'verdict': 'inconclusive'}),
                     'undecided: needs 8 seeds, has 3')
    self.assertEqual(claims.decided({'seeds': [0, 1], 'seeds_needed': 2,
                                     'verdict': 'contradicted'}),
                     'decided (contradicted)')


if __name__ == '__main__':
  tf.test.main()
