"""The paper's claims, checked on the Shapes grid's records with seeds.

A claim is a per-seed difference of box AP x 100, built from cells
(capacity, strategy, upstream, schedule) and a metric, and the sign the
paper expects. Seeds present in every cell a claim needs are paired (seed s
of every cell starts from the upstream trained with seed s). Each claim
gets its per-seed differences, their mean, Student's t 95 % interval, a
verdict (analysis/intervals.py), and how many seeds an interval at the
measured mean and spread would need to exclude 0, and the seeds whose runs
did not start from one upstream checkpoint (a retrained upstream is not
bit-identical; records carry its digest). The paper's numbers for a
claim come from experiments/paper_tables.yaml (manifest.py).
"""
import collections
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from backbone_reuse import manifest
from backbone_reuse.analysis import intervals

# A cell's schedule: the grid's own (None) or the longer one of the
# schedule-length study (any other step count; the grid runs one).
DEFAULT = None
LONG = 'long'



class Cell(NamedTuple):
  """Runs that differ only by seed."""
  capacity: str
  strategy: str  # strategy_label: 'partialK' for partial freezing.
  upstream: Optional[str]  # 'large' | 'small'; None for scratch.
  schedule: Optional[str] = DEFAULT  # DEFAULT | LONG.


class Term(NamedTuple):
  """sign x a metric of a cell: a claim's per-seed difference sums them."""
  sign: int
  capacity: str
  strategy: str
  upstream: Optional[str]
  metric: str  # A box metric: 'AP', 'APr', 'APf', ...
  schedule: Optional[str] = DEFAULT

  @property
  def cell(self) -> Cell:
    return Cell(self.capacity, self.strategy, self.upstream, self.schedule)


class PaperTerm(NamedTuple):
  """sign x a number of a manifest entry (manifest.paper_difference)."""
  sign: int
  entry: str
  key: str


def strategy_label(run: Dict) -> str:
  """A run's strategy as cells name it: partial freezing with k frozen
  block groups is 'partialK' (each k its own cell), else the strategy.
  `run`: a record's 'run' (records older than partial runs lack the
  field)."""
  stages = run.get('frozen_stages')
  return run['strategy'] + ('' if stages is None else str(stages))


def cell(record: Dict) -> Cell:
  """The cell of a record."""
  run = record['run']
  return Cell(run['capacity'], strategy_label(run), run['upstream'],
              LONG if run.get('steps') else DEFAULT)


def on_grid_schedule(records: Sequence[Dict]) -> List[Dict]:
  """The records of the grid's own schedule (not the schedule study's)."""
  return [r for r in records if cell(r).schedule == DEFAULT]


def by_seed(records: Sequence[Dict]) -> Dict[Cell, Dict[int, Dict]]:
  """{cell: {seed: record}}."""
  cells = collections.defaultdict(dict)
  for record in records:
    cells[cell(record)][record['run']['seed']] = record
  return cells


def per_seed(cells: Dict[Cell, Dict[int, Dict]], terms: Sequence[Term],
             kind: str = 'box') -> Tuple[List[int], List[float]]:
  """The seeds every term's cell has, and per seed the signed sum x 100 of
  the terms."""
  needed = [cells.get(term.cell, {}) for term in terms]
  seeds = sorted(set.intersection(*(set(c) for c in needed)))
  return seeds, [
      100 * sum(term.sign * cells[term.cell][seed]['results'][kind][
          term.metric] for term in terms)
      for seed in seeds]


# How the runs a per-seed difference combines started, per upstream set.
SAME = 'same'  # One upstream checkpoint (by digest) for every run of a set.
DIFFERENT = 'different'  # Two runs of one set started from different ones.
UNKNOWN = 'unknown'  # Some runs carry no digest (records older than it).


def upstream_pairing(cells: Dict[Cell, Dict[int, Dict]],
                     terms: Sequence[Term], seed: int) -> str:
  """Whether the runs of `terms` with seed `seed` that start from one
  upstream set (large, small) started from the same checkpoint: a retrained
  upstream is not bit-identical, so a difference across two checkpoints
  keeps the upstream's own training noise that pairing by seed removes."""
  digests = collections.defaultdict(set)
  for term in terms:
    if term.upstream is not None:
      digests[term.upstream].add(
          cells[term.cell][seed].get('upstream_checkpoint'))
  if any(len(d - {None}) > 1 for d in digests.values()):
    return DIFFERENT
  if any(None in d and len(d) > 1 for d in digests.values()):
    return UNKNOWN
  return SAME


def paired(cells: Dict[Cell, Dict[int, Dict]], capacity: str,
           upstream: Optional[str], strategy: str, reference: str,
           kind: str = 'box', name: str = 'AP') -> Optional[float]:
  """strategy - reference x 100 in one (capacity, upstream) on the grid's
  schedule: the mean of the per-seed differences over the seeds both cells
  have. None without a common seed."""
  _, differences = per_seed(cells, [
      Term(+1, capacity, strategy, upstream, name),
      Term(-1, capacity, reference, upstream, name)], kind)
  return sum(differences) / len(differences) if differences else None


def _gain(capacity, upstream, metric='AP', schedule=DEFAULT):
  """freeze - finetune terms."""
  return [Term(+1, capacity, 'freeze', upstream, metric, schedule),
          Term(-1, capacity, 'finetune', upstream, metric, schedule)]


def _negate(terms):
  """The terms (Term or PaperTerm) with their signs flipped."""
  return [t._replace(sign=-t.sign) for t in terms]


def _upstream_benefit(strategy, schedule):
  """large - small upstream terms of one strategy (Cascade R-CNN NAS-FPN)."""
  return [Term(+1, 'nasfpn_cascade', strategy, 'large', 'AP', schedule),
          Term(-1, 'nasfpn_cascade', strategy, 'small', 'AP', schedule)]


def _table1(detector, upstream, strategy):
  return f'table1/{detector}/{upstream}_{strategy}'


def _paper_gain(detector, reference='finetune'):
  """The paper's freeze - reference on Table 1, ImageNet and JFT-300M."""
  return [(name, [PaperTerm(+1, _table1(detector, upstream, 'freeze'),
                            'box_ap'),
                  PaperTerm(-1, _table1(detector, upstream, reference)
                            if reference != 'scratch'
                            else f'table1/{detector}/scratch', 'box_ap')])
          for name, upstream in (('ImageNet', 'imagenet'),
                                 ('JFT-300M', 'jft'))]


_CASCADE = 'r101_nasfpn_cascade'
_LVIS_STAGE2 = 'table5/lvis/effb7_nasfpn/copy_paste_{}/stage2'

# Each claim: text, terms, the sign the paper expects, and where the paper's
# number comes from: (where, [(label, [PaperTerm])]).
CLAIMS = (
    {'claim': 'With enough capacity (Cascade R-CNN NAS-FPN, large upstream), '
              'freezing beats fine-tuning',
     'terms': _gain('nasfpn_cascade', 'large'), 'sign': +1,
     'paper': ('Table 1', _paper_gain(_CASCADE))},
    {'claim': 'With a NAS-FPN (large upstream), freezing beats fine-tuning',
     'terms': _gain('nasfpn', 'large'), 'sign': +1,
     'paper': ('Table 1', _paper_gain('r101_nasfpn'))},
    {'claim': 'With an FPN (large upstream), freezing loses to fine-tuning',
     'terms': _gain('fpn', 'large'), 'sign': -1,
     'paper': ('Table 1', _paper_gain('r101_fpn'))},
    {'claim': 'The gain from freezing grows with capacity: (freeze - '
              'finetune) of Cascade R-CNN NAS-FPN minus that of FPN (large '
              'upstream)',
     'terms': _gain('nasfpn_cascade', 'large') + _negate(_gain('fpn',
                                                               'large')),
     'sign': +1,
     'paper': ('Table 1', [
         (label, cascade + _negate(fpn))
         for (label, cascade), (_, fpn) in zip(_paper_gain(_CASCADE),
                                               _paper_gain('r101_fpn'))])},
    {'claim': 'A larger upstream helps freezing more: (freeze - finetune) '
              'with the large minus the small upstream (Cascade R-CNN '
              'NAS-FPN)',
     'terms': _gain('nasfpn_cascade', 'large') + _negate(
         _gain('nasfpn_cascade', 'small')),
     'sign': +1,
     'paper': ('Table 1', [('JFT-300M minus ImageNet',
                            _paper_gain(_CASCADE)[1][1] + _negate(
                                _paper_gain(_CASCADE)[0][1]))])},
    {'claim': 'Freezing helps rare classes most: (freeze - finetune) on APr '
              'minus on APf (Cascade R-CNN NAS-FPN, large upstream)',
     'terms': _gain('nasfpn_cascade', 'large', 'APr') + _negate(
         _gain('nasfpn_cascade', 'large', 'APf')),
     'sign': +1,
     'paper': ('Table 5, LVIS, Copy-Paste, stage 2', [('box', [
         PaperTerm(+1, _LVIS_STAGE2.format('freeze'), 'box_apr'),
         PaperTerm(-1, _LVIS_STAGE2.format('finetune'), 'box_apr'),
         PaperTerm(-1, _LVIS_STAGE2.format('freeze'), 'box_apf'),
         PaperTerm(+1, _LVIS_STAGE2.format('finetune'), 'box_apf')])])},
    {'claim': 'Pre-trained and frozen beats training from scratch (Cascade '
              'R-CNN NAS-FPN, large upstream)',
     'terms': [Term(+1, 'nasfpn_cascade', 'freeze', 'large', 'AP'),
               Term(-1, 'nasfpn_cascade', 'scratch', None, 'AP')],
     'sign': +1,
     'paper': ('Table 1', _paper_gain(_CASCADE, 'scratch'))},
    {'claim': 'Residual adapters on the frozen backbone help further '
              '(Cascade R-CNN NAS-FPN, large upstream)',
     'terms': [Term(+1, 'nasfpn_cascade', 'adapters', 'large', 'AP'),
               Term(-1, 'nasfpn_cascade', 'freeze', 'large', 'AP')],
     'sign': +1,
     'paper': ('Table 7 minus Table 1', [
         (name, [PaperTerm(+1, f'table7/{_CASCADE}/{upstream}_adapters',
                           'box_ap'),
                 PaperTerm(-1, _table1(_CASCADE, upstream, 'freeze'),
                           'box_ap')])
         for name, upstream in (('ImageNet', 'imagenet'),
                                ('JFT-300M', 'jft'))])},
    # The schedule-length study (the paper's observation 1; Table 2).
    {'claim': 'Longer training widens the gap between freezing and '
              'fine-tuning: (freeze - finetune) at the long schedule minus '
              'at the grid\'s (Cascade R-CNN NAS-FPN, large upstream)',
     'terms': _gain('nasfpn_cascade', 'large', schedule=LONG) + _negate(
         _gain('nasfpn_cascade', 'large')),
     'sign': +1,
     'paper': ('§1 observation 1; the short-schedule rows are in Appendix C, '
               'not in our copy', [])},
    {'claim': 'With longer training a larger upstream helps fine-tuning '
              'less: (large - small upstream, finetune) at the long schedule '
              'minus at the grid\'s (Cascade R-CNN NAS-FPN)',
     'terms': _upstream_benefit('finetune', LONG) + _negate(
         _upstream_benefit('finetune', DEFAULT)),
     'sign': -1,
     'paper': ('Table 2 (NAS-FPN), JFT-300M minus ImageNet', [
         ('long, fine-tuned (He et al.)', [
             PaperTerm(+1, 'table2/he_jft_long', 'box_ap'),
             PaperTerm(-1, 'table2/he_imagenet_long', 'box_ap')]),
         ('short (Sun et al.)', [
             PaperTerm(+1, 'table2/sun_jft_short', 'box_ap'),
             PaperTerm(-1, 'table2/sun_imagenet_short', 'box_ap')])])},
    {'claim': 'With longer training freezing keeps the larger upstream\'s '
              'benefit: (large - small upstream, freeze) at the long '
              'schedule minus at the grid\'s (Cascade R-CNN NAS-FPN; the '
              'paper: kept, so an interval above 0 or around it agrees and '
              'one below 0 contradicts)',
     'terms': _upstream_benefit('freeze', LONG) + _negate(
         _upstream_benefit('freeze', DEFAULT)),
     'sign': +1,
     'paper': ('Table 1 (long), JFT-300M minus ImageNet, frozen', [
         ('long, frozen', [
             PaperTerm(+1, _table1(_CASCADE, 'jft', 'freeze'), 'box_ap'),
             PaperTerm(-1, _table1(_CASCADE, 'imagenet', 'freeze'),
                       'box_ap')])])},
    {'claim': 'With longer training freezing keeps more of the larger '
              'upstream\'s benefit than fine-tuning: the freeze minus the '
              'finetune change of (large - small upstream) from the grid\'s '
              'schedule to the long one (Cascade R-CNN NAS-FPN)',
     'terms': (_upstream_benefit('freeze', LONG)
               + _negate(_upstream_benefit('freeze', DEFAULT))
               + _negate(_upstream_benefit('finetune', LONG))
               + _upstream_benefit('finetune', DEFAULT)),
     'sign': +1,
     'paper': ('§4.2 (Table 2 and Appendix C)', [])},
)

# Partial freezing (an extension: the paper compares all-or-nothing): the
# grid's `partial` cells against full freezing and against fine-tuning, per
# capacity and k (the stem and block groups 1..k of the ResNet-18 frozen).
# k = 1 is mmdetection's ResNet default, what practitioners freeze most;
# k = 3 fine-tunes the last group only, the step before freezing all 4. The
# least and the most capacity of the grid, the large upstream.
PARTIAL_STAGES = (1, 3)
PARTIAL_CAPACITIES = ('nasfpn_cascade', 'fpn')
_TITLES = {'fpn': 'FPN', 'nasfpn_cascade': 'Cascade R-CNN NAS-FPN'}
CLAIMS += tuple(
    {'claim': f'Partial freezing (the stem and '
              f'{"block group 1" if k == 1 else f"block groups 1-{k}"} '
              f'frozen) beats {title} ({_TITLES[capacity]}, large upstream)',
     'terms': [Term(+1, capacity, f'partial{k}', 'large', 'AP'),
               Term(-1, capacity, reference, 'large', 'AP')],
     'sign': +1,
     'paper': ('none: an extension (the paper compares all-or-nothing)', [])}
    for capacity in PARTIAL_CAPACITIES for k in PARTIAL_STAGES
    for reference, title in (('freeze', 'full freezing'),
                             ('finetune', 'fine-tuning')))


def paper_values(claim: Dict, entries: Dict[str, Dict]) -> Dict[str, float]:
  """{label: the paper's value} of one claim, from the manifest."""
  _, values = claim['paper']
  return {label: round(manifest.paper_difference(entries, terms), 2)
          for label, terms in values}


def paper_text(claim: Dict, entries: Dict[str, Dict]) -> str:
  where, _ = claim['paper']
  values = paper_values(claim, entries)
  if not values:
    return f'paper: {where}'
  return f'paper {where}: ' + ' / '.join(
      f'{value:+.1f} ({label})' for label, value in values.items())


def _mismatches(cells, terms, seeds) -> Dict[int, str]:
  found = {}
  for seed in seeds:
    pairing = upstream_pairing(cells, terms, seed)
    if pairing != SAME:
      found[seed] = pairing
  return found


def claims(records: Sequence[Dict],
           entries: Optional[Dict[str, Dict]] = None) -> List[Dict]:
  """Each claim whose cells have at least one common seed: the per-seed
  differences, their mean and 95 % interval, the verdict, the seeds an
  interval would need at the measured mean and spread, and the paper's
  values (entries: the manifest; default: experiments/paper_tables.yaml)."""
  entries = manifest.load() if entries is None else entries
  longer = sorted({r['run']['steps'] for r in records if r['run'].get('steps')})
  if len(longer) > 1:  # Each would replace the others' records in LONG cells.
    raise ValueError(f'records at {len(longer)} longer schedules ({longer}); '
                     'accepted: one besides the grid\'s (judge the others '
                     'with at_steps)')
  cells = by_seed(records)
  out = []
  for claim in CLAIMS:
    seeds, differences = per_seed(cells, claim['terms'])
    if not seeds:
      continue
    result = intervals.paired_interval(differences, [0.0] * len(differences))
    out.append({
        'claim': claim['claim'],
        'paper': paper_text(claim, entries),
        'paper_values': paper_values(claim, entries),
        'seeds': seeds,
        'differences': differences,
        'difference_mean': result['difference_mean'],
        'interval': result['interval'],
        'expected_sign': claim['sign'],
        'verdict': intervals.verdict(result['interval'], claim['sign']),
        'seeds_needed': intervals.seeds_needed(differences),
        # Seeds whose runs did not all start from one upstream checkpoint
        # per upstream set ({seed: DIFFERENT | UNKNOWN}); empty: all paired.
        'upstream_mismatch': _mismatches(cells, claim['terms'], seeds),
        # The step counts its cells trained, None for the grid's schedule
        # (two when the claim compares schedules).
        'steps': _steps(cells, claim['terms'], seeds),
    })
  return out


def _steps(cells, terms, seeds) -> List[Optional[int]]:
  found = {cells[t.cell][seed]['run'].get('steps') for t in terms
           for seed in seeds}
  return sorted(found, key=lambda n: n or 0)


def at_steps(records: Sequence[Dict], steps: int,
             entries: Optional[Dict[str, Dict]] = None) -> List[Dict]:
  """The claims judged at one schedule: the records that trained `steps`
  steps read as cells of the grid's schedule (so the claims comparing two
  schedules find no cells and are left out)."""
  found = claims([dict(r, run=dict(r['run'], steps=None)) for r in records
                  if r['run'].get('steps') == steps], entries)
  return [dict(claim, steps=[steps]) for claim in found]


def decided(claim: Dict) -> str:
  """Whether the miniature decides the claim, in words."""
  needed = claim['seeds_needed']
  used = len(claim['seeds'])
  if claim['verdict'] != intervals.INCONCLUSIVE:
    return f'decided ({claim["verdict"]})'
  if needed is None:
    return ('not decidable at this spread' if used > 1
            else 'needs 2 seeds for a spread')
  return f'undecided: needs {needed} seeds, has {used}'


def schedule_text(claim: Dict, grid_steps: Optional[int] = None) -> str:
  """The detector steps a claim's cells trained ('1,500 vs 3,000' when it
  compares two schedules); `grid_steps` names the grid's schedule."""
  return ' vs '.join(
      f'{n:,}' if n else (f'{grid_steps:,}' if grid_steps else "the grid's")
      for n in claim.get('steps') or [None])


def table(found: Sequence[Dict], grid_steps: Optional[int] = None) -> str:
  """The claims as a markdown table, with the detector steps of each
  (`grid_steps`: the grid's schedule, None for the cells without a step
  count of their own)."""
  lines = ['| claim | schedule (detector steps) | paper | seeds used | seeds '
           'needed | difference per seed (AP × 100) | mean | 95 % interval | '
           'verdict | decided? |',
           '|---|---|---|---|---|---|---|---|---|---|']
  for claim in found:
    interval = claim['interval']
    needed = claim['seeds_needed']
    lines.append(
        f"| {claim['claim']} | {schedule_text(claim, grid_steps)} | "
        f"{claim['paper']} | {len(claim['seeds'])} | "
        f"{needed if needed else '—'} | "
        f"{', '.join(f'{d:+.1f}' for d in claim['differences'])} | "
        f"{claim['difference_mean']:+.1f} | "
        + (f'[{interval[0]:+.1f}, {interval[1]:+.1f}]' if interval else '—')
        + f" | {claim['verdict']} | {decided(claim)} |")
  mismatched = [(i, claim) for i, claim in enumerate(found, 1)
                if claim.get('upstream_mismatch')]
  if mismatched:
    lines += ['', 'Seeds whose runs did not start from one upstream '
              'checkpoint per upstream set (a retrained upstream is not '
              'bit-identical; such a difference keeps the upstream\'s own '
              'training noise): ' + '; '.join(
                  f'claim {i}: ' + ', '.join(
                      f's{seed} {pairing}' for seed, pairing
                      in sorted(claim['upstream_mismatch'].items()))
                  for i, claim in mismatched) + '.']
    if any(UNKNOWN in claim['upstream_mismatch'].values()
           for _, claim in mismatched):
      lines[-1] += (f' "{UNKNOWN}": a run\'s record is older than the '
                    'checkpoint digest it would carry.')
  return '\n'.join(lines)
