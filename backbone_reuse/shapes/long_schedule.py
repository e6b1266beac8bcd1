"""The long schedule L: where the miniature's detectors have converged.

The paper's Table 1 is measured at its long schedule, so the grid's headline
is judged at L: the shortest of the pilot's step counts at which doubling
the schedule adds less than GAIN_BELOW box AP x 100 to the pilot mean of
every strategy (curve.md's criterion). The pilot runs (design.GridScale.pilot)
are scored on the dev split and L is chosen from those scores only: the
validation split the claims are judged on is not read here.
"""
from typing import Dict, List, Optional, Sequence

from backbone_reuse.configs import strategies
from backbone_reuse.shapes import dev_split

GAIN_BELOW = 1.0  # Box AP x 100 that a doubling may add at L.
STRATEGIES = (strategies.FREEZE, strategies.FINETUNE)  # experiments.PAIR,
# freeze first as the report reads; not imported from there, which loads
# the Shapes world and TensorFlow.
RULE = (f'L = the shortest pilot schedule at which doubling adds less than '
        f'{GAIN_BELOW:g} dev box AP x 100 to the pilot mean of '
        f'{" and of ".join(STRATEGIES)} (seeds with every pilot run)')


def _dev_ap(record: Dict) -> float:
  return 100 * record[dev_split.NAME]['box']['AP']


def choose(records: Sequence[Dict], capacity: str, steps: Sequence[int],
           seeds: Sequence[int]) -> Dict:
  """L from the pilot's dev-scored records.

  Args:
    records: any records; those of `capacity`, large upstream, a pilot
      strategy and step count, scored on the dev split, are read.
    capacity: the pilot's detector.
    steps: the pilot's step counts, each double the one before.
    seeds: the pilot's seeds.

  Returns:
    {'rule', 'steps', 'seeds' (those with every pilot run), 'missing' (run
    names without a dev score), 'dev_box_ap' ({strategy: {steps: mean}}),
    'doubling_gain' ({strategy: {'A->B': gain}}), 'L' (None while
    undecided), 'converged' (False: L is the longest and its doubling still
    added GAIN_BELOW or more; None while undecided or with one step
    count), 'seeds_with_several_upstreams' (seeds whose runs did not all
    start from one upstream checkpoint)}.
  """
  steps = sorted(steps)
  for shorter, longer in zip(steps, steps[1:]):
    if longer != 2 * shorter:
      raise ValueError(f'pilot steps {steps}: each must double the one '
                       'before')
  found = {}
  for record in records:
    run = record['run']
    if (run['capacity'] == capacity and run['upstream'] == 'large'
        and run['strategy'] in STRATEGIES and run.get('steps') in steps
        and run.get('frozen_stages') is None
        and dev_split.NAME in record):
      found[(run['strategy'], run['steps'], run['seed'])] = record
  wanted = [(s, n, seed) for seed in seeds for n in steps for s in STRATEGIES]
  missing = [f'{capacity}_{s}_large_s{seed}_{n}steps'
             for s, n, seed in wanted if (s, n, seed) not in found]
  complete = [seed for seed in seeds
              if all((s, n, seed) in found for s in STRATEGIES for n in steps)]
  means = {s: {n: sum(_dev_ap(found[(s, n, seed)]) for seed in complete)
                  / len(complete)
               for n in steps} for s in STRATEGIES} if complete else {}
  gains = {s: {f'{a}->{b}': means[s][b] - means[s][a]
               for a, b in zip(steps, steps[1:])} for s in means}
  chosen, converged = _decide(steps, gains, bool(complete) and not missing)
  # A seed's runs at different step counts may start from different
  # upstream checkpoints (a new machine retrains the upstream): named, since
  # such a doubling gain keeps the upstream's training noise.
  mixed = [seed for seed in complete
           if len({found[(s, n, seed)].get('upstream_checkpoint')
                   for s in STRATEGIES for n in steps}) > 1]
  return {'rule': RULE, 'steps': steps, 'seeds': complete,
          'missing': missing, 'dev_box_ap': means, 'doubling_gain': gains,
          'L': chosen, 'converged': converged,
          'seeds_with_several_upstreams': mixed}


def _decide(steps: List[int], gains: Dict, complete: bool):
  if not complete:
    return None, None
  if len(steps) < 2:  # No doubling to judge convergence by.
    return steps[-1], None
  for a, b in zip(steps, steps[1:]):
    if all(gains[s][f'{a}->{b}'] < GAIN_BELOW for s in STRATEGIES):
      return a, True
  return steps[-1], False


def describe(choice: Dict) -> str:
  """The choice in a sentence (the report's)."""
  if choice['L'] is None:
    return (f'L is not chosen yet: {len(choice["missing"])} pilot run(s) '
            f'have no dev score ({", ".join(choice["missing"])}).')
  if choice['converged'] is None:
    return (f'L = {choice["L"]} steps, the only piloted schedule: '
            'convergence is not tested.')
  last = list(choice['steps'])[-2:]
  key = f'{last[0]}->{last[1]}'
  if not choice['converged']:
    added = ', '.join(f'{s} {choice["doubling_gain"][s][key]:+.1f}'
                      for s in STRATEGIES)
    return (f'L = {choice["L"]} steps, the longest piloted; the miniature '
            f'is not converged there: doubling from {last[0]} still added '
            f'{added} dev box AP.')
  return (f'L = {choice["L"]} steps: doubling it added less than '
          f'{GAIN_BELOW:g} dev box AP to every strategy.')


def table(choice: Dict) -> str:
  """Dev box AP x 100 of the pilot means per strategy and schedule, and
  what each doubling added."""
  if not choice['dev_box_ap']:
    return ''
  steps = choice['steps']
  pairs = [f'{a}->{b}' for a, b in zip(steps, steps[1:])]
  lines = ['| strategy | ' + ' | '.join(f'{n} steps' for n in steps) + ' | '
           + ' | '.join(f'{p} adds' for p in pairs) + ' |',
           '|---|' + '---|' * (len(steps) + len(pairs))]
  for strategy, means in choice['dev_box_ap'].items():
    lines.append(f'| {strategy} | '
                 + ' | '.join(f'{means[n]:.1f}' for n in steps) + ' | '
                 + ' | '.join(f'{choice["doubling_gain"][strategy][p]:+.1f}'
                              for p in pairs) + ' |')
  return '\n'.join(lines)


def drift_table(records: Sequence[Dict]) -> Optional[str]:
  """Per run that measured it (by strategy, schedule, seed): each block
  group's relative distance from the upstream checkpoint and the upstream
  val top-1 under the upstream's head, before -> after."""
  measured = sorted((r for r in records if 'backbone_drift' in r),
                    key=lambda r: (r['run']['strategy'],
                                   r['run'].get('steps') or 0,
                                   r['run']['seed']))
  if not measured:
    return None
  # The stem first, then the block groups (records store keys sorted).
  groups = sorted(measured[0]['backbone_drift']['distance'],
                  key=lambda g: (g != 'stem', g))
  lines = ['| run | ' + ' | '.join(groups) + ' | upstream top-1 (upstream '
           '-> with this backbone) |', '|---|' + '---|' * (len(groups) + 1)]
  for record in measured:
    drift = record['backbone_drift']
    lines.append(
        f'| {record["name"]} | '
        + ' | '.join(f'{drift["distance"][g]:.3f}' for g in groups)
        + f' | {drift["upstream_top1_of_upstream"]:.3f} -> '
        f'{drift["upstream_top1"]:.3f} |')
  return '\n'.join(lines)


def val_ap_by_steps(records: Sequence[Dict], capacity: str, grid_steps: int,
                    upstream: str = 'large') -> Dict[str, Dict[int, Dict]]:
  """{strategy: {steps: {seed: val box AP x 100}}} of full freeze and
  fine-tune runs of `capacity` with `upstream`, the grid's runs at
  `grid_steps`. A run met twice (a pilot run retraining a grid run) is
  read from the later record: pass the grid's records first."""
  found = {s: {} for s in STRATEGIES}
  for record in records:
    run = record['run']
    if (run['capacity'] == capacity and run['upstream'] == upstream
        and run['strategy'] in STRATEGIES
        and run.get('frozen_stages') is None):
      steps = run.get('steps') or grid_steps
      found[run['strategy']].setdefault(steps, {})[run['seed']] = (
          100 * record['results']['box']['AP'])
  return found


def steps_table(points: Dict[str, Dict[int, Dict]]) -> str:
  """Mean val box AP x 100 (seeds) per strategy and step count."""
  steps = sorted({n for by_steps in points.values() for n in by_steps})
  lines = ['| strategy | ' + ' | '.join(f'{n:,} steps' for n in steps) + ' |',
           '|---|' + '---|' * len(steps)]
  for strategy, by_steps in points.items():
    cells = []
    for n in steps:
      aps = list(by_steps.get(n, {}).values())
      cells.append(f'{sum(aps) / len(aps):.1f} ({len(aps)})' if aps else '—')
    lines.append(f'| {strategy} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)
