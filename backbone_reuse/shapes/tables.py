"""The Shapes grid's tables, from its run records: Table 1 (strategy x
capacity x upstream), Table 3 (parameters and what training costs), the
schedule-length and partial-freezing tables, where the time went and the
learning curves; and the grouping of records by cell they share with the
figures and the report.
"""
import collections
import statistics
from typing import Dict, List, Optional, Tuple

from backbone_reuse.configs import strategies
from backbone_reuse.shapes import claims
from backbone_reuse.shapes.experiments import CAPACITIES
from backbone_reuse.shapes.experiments import CAPACITY_TITLES
from backbone_reuse.shapes.experiments import PAIR
from backbone_reuse.shapes.experiments import UPSTREAMS


def _key(record) -> Tuple[str, str, Optional[str]]:
  run = record['run']
  return run['capacity'], claims.strategy_label(run), run['upstream']

def group(records: List[Dict]) -> Dict[Tuple, List[Dict]]:
  """Records by (capacity, strategy label, upstream); seeds together."""
  groups = collections.defaultdict(list)
  for record in records:
    groups[_key(record)].append(record)
  return groups

def metric(records: List[Dict], kind: str, name: str) -> List[float]:
  return [r['results'][kind][name] for r in records]

def cell(values: List[float]) -> str:
  """AP x 100; with repeats: mean and the range."""
  if not values:
    return '—'
  values = [100 * v for v in values]
  if len(values) == 1:
    return f'{values[0]:.1f}'
  return (f'{statistics.mean(values):.1f} ({min(values):.1f}–'
          f'{max(values):.1f}, n={len(values)})')

def mean(values):
  return statistics.mean(values) if values else None

def tf_peak_mb(record: Dict) -> Optional[float]:
  """TF allocator peak of the training process (largest device), in MiB."""
  peaks = record['resources'].get('tf_peak_memory_mb') or {}
  return max(peaks.values()) if peaks else None

def resource(record: Dict, field: str) -> Optional[float]:
  if field == 'tf_peak_mb':
    return tf_peak_mb(record)
  return record['resources'][field]

def table1(records: List[Dict], kind: str = 'box', name: str = 'AP') -> str:
  """Rows capacity x upstream; scratch | finetune | freeze | freeze - finetune
  (+ adapters | adapters - freeze when there are adapter runs)."""
  groups = group(records)
  by_seed = claims.by_seed(records)
  with_adapters = any(k[1] == 'adapters' for k in groups)
  header = ('| detector | upstream | scratch | finetune | freeze | '
            'freeze − finetune |')
  rule = '|---|---|---|---|---|---|'
  if with_adapters:
    header += ' adapters | adapters − freeze |'
    rule += '---|---|'
  lines = [header, rule]
  for capacity in CAPACITIES:
    scratch = metric(groups.get((capacity, 'scratch', None), []), kind, name)
    for upstream in UPSTREAMS:
      cells = {s: metric(groups.get((capacity, s, upstream), []), kind, name)
               for s in (*PAIR, strategies.ADAPTERS)}
      if not (scratch or any(cells.values())):
        continue
      frozen_gain = _difference(by_seed, capacity, upstream, 'freeze',
                                'finetune', kind, name)
      adapters_gain = _difference(by_seed, capacity, upstream, 'adapters',
                                  'freeze', kind, name)
      row = (f'| {CAPACITY_TITLES[capacity]} | {upstream} | {cell(scratch)} '
             f'| {cell(cells["finetune"])} | {cell(cells["freeze"])} | '
             f'{frozen_gain} |')
      if with_adapters:
        row += f' {cell(cells["adapters"])} | {adapters_gain} |'
      lines.append(row)
  return '\n'.join(lines)

def _difference(cells, capacity, upstream, strategy, reference, kind,
                name) -> str:
  value = claims.paired(cells, capacity, upstream, strategy, reference, kind,
                        name)
  return '—' if value is None else f'{value:+.1f}'

def table3(records: List[Dict]) -> str:
  """Trained vs total parameters, FLOPs, step time and memory per detector."""
  groups = group(records)
  lines = ['| detector | strategy | total params (M) | trained params (M) | '
           'trained % | train GFLOPs / step | median step (s) | '
           'TF peak memory (GB) | peak RSS (GB) |',
           '|---|---|---|---|---|---|---|---|---|']
  partial = [f'partial{k}' for k in sorted(claims.PARTIAL_STAGES)]
  for capacity in CAPACITIES:
    for strategy in ('finetune', *partial, 'freeze', 'adapters', 'scratch'):
      runs = [r for k, v in groups.items() for r in v
              if k[0] == capacity and k[1] == strategy]
      if not runs:
        continue
      counts = runs[0]['parameters']
      total = counts['total_params']
      trained = counts['trainable_params']
      step = [r['resources']['median_step_seconds'] for r in runs
              if r['resources']['median_step_seconds']]
      rss = [r['resources']['peak_rss_mb'] for r in runs]
      tf_peak = [tf_peak_mb(r) for r in runs if tf_peak_mb(r)]
      tf_cell = (f'{statistics.median(tf_peak) / 1024:.2f}' if tf_peak
                 else '—')
      lines.append(
          f'| {CAPACITY_TITLES[capacity]} | {strategy} | {total / 1e6:.2f} | '
          f'{trained / 1e6:.2f} | {100 * trained / total:.1f} | '
          f'{runs[0]["flops_per_step"]["total"] / 1e9:.1f} | '
          f'{statistics.median(step):.3f} | {tf_cell} | '
          f'{statistics.median(rss) / 1024:.2f} |')
  return '\n'.join(lines)

def time_table(rows: List[Dict]) -> str:
  total = sum(r['minutes'] for r in rows)
  lines = ['| stage | runs | minutes | share |', '|---|---|---|---|']
  lines += [f"| {r['stage']} | {r['runs']} | {r['minutes']:.1f} | "
            f"{100 * r['minutes'] / total:.0f} % |" for r in rows]
  lines.append(f'| all | {sum(r["runs"] for r in rows)} | {total:.1f} | '
               '100 % |')
  return '\n'.join(lines)

def schedule_table(records: List[Dict]) -> str:
  """Box AP of the schedule-length study's cells: each (strategy,
  upstream) at the grid's schedule and at the long one, over the seeds both
  have."""
  cells = claims.by_seed(records)
  lines = ['| strategy | upstream | seeds | grid schedule | long schedule | '
           'long − grid |', '|---|---|---|---|---|---|']
  for (capacity, strategy, upstream, schedule), long_runs in sorted(
      cells.items(), key=lambda kv: str(kv[0])):
    if schedule != claims.LONG:
      continue
    short_runs = cells.get((capacity, strategy, upstream, claims.DEFAULT), {})
    seeds = sorted(set(short_runs) & set(long_runs))
    if not seeds:
      continue
    short = [short_runs[s]['results']['box']['AP'] for s in seeds]
    long = [long_runs[s]['results']['box']['AP'] for s in seeds]
    steps = long_runs[seeds[0]]['run']['steps']
    lines.append(
        f'| {strategy} | {upstream} | {", ".join(map(str, seeds))} | '
        f'{cell(short)} | {cell(long)} ({steps} steps) | '
        f'{100 * (mean(long) - mean(short)):+.1f} |')
  return '\n'.join(lines)

def partial_table(records: List[Dict]) -> str:
  """Box AP of fine-tuning, partial freezing at each k and full freezing
  per capacity (large upstream, grid schedule), over the seeds every one of
  those cells has."""
  cells = claims.by_seed(claims.on_grid_schedule(records))
  strategies = ['finetune', *(f'partial{k}' for k in claims.PARTIAL_STAGES),
                'freeze']
  lines = ['| detector | seeds | ' + ' | '.join(strategies) + ' |',
           '|---|---|' + '---|' * len(strategies)]
  for capacity in claims.PARTIAL_CAPACITIES:
    found = [cells.get((capacity, s, 'large', claims.DEFAULT), {})
             for s in strategies]
    seeds = sorted(set.intersection(*(set(c) for c in found)))
    if not seeds:
      continue
    lines.append(f'| {CAPACITY_TITLES[capacity]} | '
                 f'{", ".join(map(str, seeds))} | ' + ' | '.join(
                     cell([c[s]['results']['box']['AP'] for s in seeds])
                     for c in found) + ' |')
  return '\n'.join(lines)

def learning_curves(records: List[Dict]) -> str:
  """Box AP at each evaluated step, per run, and what the last interval
  added."""
  lines = ['| detector | strategy | ' + ' | '.join(
      f"step {p['step']}" for p in records[0]['curve']) +
           ' | last interval adds |',
           '|---|---|' + '---|' * (len(records[0]['curve']) + 1)]
  for record in records:
    points = [100 * p['box']['AP'] for p in record['curve']]
    run = record['run']
    lines.append(
        f"| {CAPACITY_TITLES[run['capacity']]} | {run['strategy']} | "
        + ' | '.join(f'{v:.1f}' for v in points)
        + f' | {points[-1] - points[-2]:+.1f} |')
  return '\n'.join(lines)
