"""Writes the Shapes grid's report: Tables 1 and 3, Figures 1 and 4, the
paper's claims with intervals, summary.json; and the learning curves.

Input: one record per run (what shapes/grid.py commits to
REPORT_DIR/runs/NAME.json) and a context dict (command, machine, upstream
records, training annotations per class). Everything printed comes from
those records; nothing is typed in.
"""
import collections
import json
import os
import statistics
from typing import Dict, List, Optional, Tuple

import matplotlib
matplotlib.use('Agg')
# pylint: disable=g-import-not-at-top
from matplotlib import pyplot as plt
import numpy as np

from backbone_reuse.shapes import claims
from backbone_reuse.evaluation import stratified
from backbone_reuse.shapes.experiments import CAPACITIES
from backbone_reuse.shapes.experiments import CAPACITY_TITLES
from backbone_reuse.shapes.experiments import UPSTREAMS

SUMMARY = 'summary.json'


# -- aggregation ----------------------------------------------------------------
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


def _cell(values: List[float]) -> str:
  """AP x 100; with repeats: mean and the range."""
  if not values:
    return '—'
  values = [100 * v for v in values]
  if len(values) == 1:
    return f'{values[0]:.1f}'
  return (f'{statistics.mean(values):.1f} ({min(values):.1f}–'
          f'{max(values):.1f}, n={len(values)})')


def _mean(values):
  return statistics.mean(values) if values else None


def tf_peak_mb(record: Dict) -> Optional[float]:
  """TF allocator peak of the training process (largest device), in MiB."""
  peaks = record['resources'].get('tf_peak_memory_mb') or {}
  return max(peaks.values()) if peaks else None


def _resource(record: Dict, field: str) -> Optional[float]:
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
               for s in ('finetune', 'freeze', 'adapters')}
      if not (scratch or any(cells.values())):
        continue
      frozen_gain = _difference(by_seed, capacity, upstream, 'freeze',
                                'finetune', kind, name)
      adapters_gain = _difference(by_seed, capacity, upstream, 'adapters',
                                  'freeze', kind, name)
      row = (f'| {CAPACITY_TITLES[capacity]} | {upstream} | {_cell(scratch)} '
             f'| {_cell(cells["finetune"])} | {_cell(cells["freeze"])} | '
             f'{frozen_gain} |')
      if with_adapters:
        row += f' {_cell(cells["adapters"])} | {adapters_gain} |'
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


# -- figures ----------------------------------------------------------------------
def figure1(records: List[Dict], path: str) -> None:
  """AP vs peak memory and vs step time; arrows finetune -> freeze."""
  groups = group(records)
  figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  colors = {'fpn': 'tab:blue', 'nasfpn': 'tab:orange',
            'nasfpn_cascade': 'tab:green'}
  markers = {'small': 'o', 'large': 's'}
  measures = (('tf_peak_mb', 'training peak memory, TF allocator (GB)',
               1 / 1024),
              ('median_step_seconds', 'training step time (s, median)', 1))
  for axis, (field, label, factor) in zip(axes, measures):
    for capacity in CAPACITIES:
      for upstream in UPSTREAMS:
        points = {}
        for strategy in ('finetune', 'freeze'):
          runs = groups.get((capacity, strategy, upstream), [])
          if runs:
            points[strategy] = (
                factor * _mean([_resource(r, field) for r in runs]),
                100 * _mean(metric(runs, 'box', 'AP')))
        for strategy, (x, y) in points.items():
          axis.scatter(x, y, color=colors[capacity],
                       marker=markers[upstream],
                       facecolors='none' if strategy == 'finetune' else None)
        adapted = groups.get((capacity, 'adapters', upstream), [])
        if adapted:
          axis.scatter(
              factor * _mean([_resource(r, field) for r in adapted]),
              100 * _mean(metric(adapted, 'box', 'AP')), marker='*', s=120,
              color=colors[capacity])
        if len(points) == 2:
          axis.annotate('', xy=points['freeze'], xytext=points['finetune'],
                        arrowprops=dict(arrowstyle='->',
                                        color=colors[capacity]))
    axis.set_xlabel(label)
    axis.set_ylabel('box AP (val)')
    axis.grid(alpha=0.3)
  handles = [plt.Line2D([], [], color=c, marker='s', linestyle='',
                        label=CAPACITY_TITLES[k]) for k, c in colors.items()]
  handles += [plt.Line2D([], [], color='grey', marker=m, linestyle='',
                         label=f'{u} upstream') for u, m in markers.items()]
  if any(k[1] == 'adapters' for k in groups):
    handles.append(plt.Line2D([], [], color='grey', marker='*',
                              linestyle='', label='adapters'))
  axes[1].legend(handles=handles, fontsize=8, loc='best')
  figure.suptitle('Fine-tune (hollow) → freeze (filled): AP vs training '
                  'resources (Shapes world)')
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def relative_per_class(records_by_strategy: Dict[str, List[Dict]],
                       reference: List[Dict],
                       annotations: Dict[str, int]):
  """(annotations, AP - reference AP) per class with a defined AP, per
  strategy; per-class APs are averaged over seeds first."""
  def mean_per_class(runs):
    classes = runs[0]['results']['box']['per_class']
    return {c: _mean([r['results']['box']['per_class'][c] for r in runs])
            for c in classes}
  base = mean_per_class(reference)
  curves = {}
  for strategy, runs in records_by_strategy.items():
    if not runs:
      continue
    ap = mean_per_class(runs)
    pairs = sorted((annotations[c], 100 * (ap[c] - base[c])) for c in ap
                   if ap[c] >= 0 and base[c] >= 0)
    curves[strategy] = pairs
  return curves


def figure4(records: List[Dict], annotations: Dict[str, int],
            path: str) -> None:
  """Per-class box AP relative to fine-tuning vs training annotations."""
  groups = group(records)
  figure, axes = plt.subplots(1, len(CAPACITIES), figsize=(14, 4),
                              sharey=True)
  styles = {'freeze': 'tab:green', 'scratch': 'tab:red',
            'adapters': 'tab:purple'}
  dashes = {'large': '-', 'small': '--'}
  for axis, capacity in zip(axes, CAPACITIES):
    for upstream in UPSTREAMS:
      reference = groups.get((capacity, 'finetune', upstream), [])
      if not reference:
        continue
      curves = relative_per_class(
          {'freeze': groups.get((capacity, 'freeze', upstream), []),
           'scratch': groups.get((capacity, 'scratch', None), []),
           'adapters': groups.get((capacity, 'adapters', upstream), [])},
          reference, annotations)
      for strategy, pairs in curves.items():
        x = np.log10([p[0] for p in pairs])
        y = [p[1] for p in pairs]
        at = np.linspace(x.min(), x.max(), 100)
        axis.plot(10 ** at,
                  stratified.gaussian_smooth(x, y, stratified.LOG_SIGMA, at),
                  dashes[upstream], color=styles[strategy],
                  label=f'{strategy} vs finetune ({upstream} upstream)')
        if upstream == 'large':
          axis.scatter(10 ** x, y, s=8, color=styles[strategy], alpha=0.35)
    axis.axhline(0, color='black', linewidth=0.8)
    axis.set_xscale('log')
    axis.set_title(CAPACITY_TITLES[capacity])
    axis.set_xlabel('training annotations of the class')
    axis.grid(alpha=0.3)
  axes[0].set_ylabel('box AP − fine-tune box AP (per class)')
  axes[-1].legend(fontsize=7, loc='best')
  figure.suptitle('Class-wise AP relative to fine-tuning (curves: Gaussian '
                  f'smoothing, σ = {stratified.LOG_SIGMA} in log10 annotations; dots: '
                  'classes, large upstream)')
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


# -- the reading --------------------------------------------------------------------
def _delta(cells, capacity, upstream, kind='box', name='AP'):
  """freeze - finetune x 100, paired by seed."""
  return claims.paired(cells, capacity, upstream, 'freeze', 'finetune', kind,
                       name)


def findings(records: List[Dict]) -> List[str]:
  """Further readings of the grid's numbers: differences and ratios only
  (the verdicts are the claims')."""
  groups = group(records)
  cells = claims.by_seed(records)
  lines = []
  for upstream in UPSTREAMS:
    deltas = {c: _delta(cells, c, upstream) for c in CAPACITIES}
    text = ', '.join(f'{CAPACITY_TITLES[c]} {d:+.1f}'
                     for c, d in deltas.items() if d is not None)
    if text:
      lines.append(f'- Capacity ({upstream} upstream): freeze − finetune box '
                   f'AP = {text}.')
  for capacity in CAPACITIES:
    small, large = (_delta(cells, capacity, u) for u in UPSTREAMS)
    if small is not None and large is not None:
      lines.append(
          f'- Upstream size ({CAPACITY_TITLES[capacity]}): freeze − finetune'
          f' = {small:+.1f} (small) vs {large:+.1f} (large).')
  for capacity in CAPACITIES:
    parts = []
    for name in ('APr', 'APc', 'APf'):
      value = _delta(cells, capacity, 'large', 'box', name)
      if value is not None:
        parts.append(f'{name} {value:+.1f}')
    if parts:
      lines.append(f'- Frequency groups ({CAPACITY_TITLES[capacity]}, large '
                   f'upstream): freeze − finetune {", ".join(parts)}.')
  for capacity in CAPACITIES:
    finetune = [r for k, v in groups.items() for r in v
                if k[0] == capacity and k[1] == 'finetune']
    freeze = [r for k, v in groups.items() for r in v
              if k[0] == capacity and k[1] == 'freeze']
    if finetune and freeze:
      def ratio(field):
        values = [[_resource(r, field) for r in runs]
                  for runs in (freeze, finetune)]
        if not all(v is not None for group in values for v in group):
          return 'n/a'
        value = statistics.median(values[0]) / statistics.median(values[1])
        return f'{value:.2f}'
      flops = (freeze[0]['flops_per_step']['total'] /
               finetune[0]['flops_per_step']['total'])
      lines.append(
          f'- Resources ({CAPACITY_TITLES[capacity]}): freeze / finetune = '
          f'{ratio("median_step_seconds")} step time, '
          f'{ratio("tf_peak_mb")} TF peak memory, {ratio("peak_rss_mb")} '
          f'peak RSS, {flops:.2f} training FLOPs per step.')
  for capacity in CAPACITIES:
    for upstream in UPSTREAMS:
      delta = claims.paired(cells, capacity, upstream, 'adapters', 'freeze')
      if delta is not None:
        lines.append(
            f'- Adapters ({CAPACITY_TITLES[capacity]}, {upstream} upstream): '
            f'adapters − freeze box AP = {delta:+.1f}.')
  return lines


def wall_minutes(records: List[Dict], context: Dict) -> float:
  """Minutes of every stage behind the report: the world's generation and
  each upstream and detector run (each records its own, wherever and
  whenever it ran)."""
  seconds = sum(r['seconds'] for r in [*records, *context['upstream']])
  return (seconds + context['data_seconds']) / 60


def _order(record: Dict) -> Tuple:
  run = record['run']
  return (CAPACITIES.index(run['capacity']), run['strategy'],
          run.get('steps') or 0)


def where_the_time_went(records: List[Dict], context: Dict) -> List[Dict]:
  """Minutes and run counts per kind of stage (the world, the upstreams of
  each size, each capacity's detectors on each schedule)."""
  rows = collections.OrderedDict()

  def add(name, seconds):
    row = rows.setdefault(name, {'stage': name, 'runs': 0, 'minutes': 0.0})
    row['runs'] += 1
    row['minutes'] += seconds / 60
  add('generate the world', context['data_seconds'])
  for upstream in sorted(context['upstream'], key=lambda u: u['upstream']):
    add(f"upstream ({upstream['upstream']})", upstream['seconds'])
  for record in sorted(records, key=_order):
    run = record['run']
    schedule = (f", {run['steps']} steps" if run.get('steps') else '')
    add(f"{CAPACITY_TITLES[run['capacity']]}, {claims.strategy_label(run)}"
        f'{schedule}', record['seconds'])
  return list(rows.values())


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
        f'{_cell(short)} | {_cell(long)} ({steps} steps) | '
        f'{100 * (_mean(long) - _mean(short)):+.1f} |')
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
                     _cell([c[s]['results']['box']['AP'] for s in seeds])
                     for c in found) + ' |')
  return '\n'.join(lines)


def summary(records: List[Dict], context: Dict) -> Dict:
  """What summary.json holds: upstream top-1 per seed, per-cell box AP and
  APr per seed, the claims and where the time went."""
  upstream = {size: [u['top1'] for u in sorted(context['upstream'],
                                                key=lambda u: u['seed'])
                     if u['upstream'] == size] for size in UPSTREAMS}
  cells = []
  for (capacity, strategy, size, schedule), by_seed in sorted(
      claims.by_seed(records).items(), key=lambda kv: str(kv[0])):
    seeds = sorted(by_seed)
    cells.append({
        'capacity': capacity, 'strategy': strategy, 'upstream': size,
        'steps': by_seed[seeds[0]]['run'].get('steps') or (
            context['scale']['detector_steps']),
        'seeds': seeds,
        'box_ap': [by_seed[s]['results']['box']['AP'] for s in seeds],
        'box_apr': [by_seed[s]['results']['box']['APr'] for s in seeds]})
  return {'wall_minutes': wall_minutes(records, context),
          'time': where_the_time_went(records, context),
          'upstream': upstream, 'cells': cells,
          'claims': claims.claims(records)}


def write_report(records: List[Dict], context: Dict, report_dir: str) -> None:
  """Writes table1.md, table3.md, figure1.png, figure4.png, README.md and
  summary.json. Tables and figures show the grid's schedule; the claims
  use every record (the schedule-length study's too)."""
  os.makedirs(report_dir, exist_ok=True)
  grid = claims.on_grid_schedule(records)
  note = ('Box AP × 100 on the Shapes-world val set. Cells with several '
          'seeds show mean (min–max, n); a difference is the mean of the '
          'per-seed differences over the seeds both cells have.')
  sections = [('Box AP', 'box', 'AP'), ('Box AP50', 'box', 'AP50'),
              ('Box APr (rare classes)', 'box', 'APr'),
              ('Box APc (common classes)', 'box', 'APc'),
              ('Box APf (frequent classes)', 'box', 'APf')]
  text = ['# Table 1 analogue: strategy × detector capacity × upstream', '',
          note, '']
  for title, kind, name in sections:
    text += [f'## {title}', '', table1(grid, kind, name), '']
  _write(report_dir, 'table1.md', '\n'.join(text))
  _write(report_dir, 'table3.md', '\n'.join([
      '# Table 3 analogue: trained vs total parameters (and what training '
      'costs)', '',
      'Parameters from each run\'s parameters.json (total includes BatchNorm '
      'moving statistics). GFLOPs: TF\'s registered FLOP statistics summed '
      'over one traced training step (forward, gradients of the trainable '
      'variables, optimizer update) at '
      f'batch {grid[0]["batch_size"]}. Step time: median over '
      'training loops after the first; peak RSS of the training process.',
      '', table3(grid), '']))
  figure1(grid, os.path.join(report_dir, 'figure1.png'))
  figure4(grid, {name: c['instances']
                 for name, c in context['annotations'].items()},
          os.path.join(report_dir, 'figure4.png'))
  _write(report_dir, 'README.md', readme(records, context))
  _write(report_dir, SUMMARY,
         json.dumps(summary(records, context), indent=1) + '\n')


def _precision(context: Dict) -> str:
  found = context.get('precision') or {'dtype': 'float32', 'reason': ''}
  flags = ', '.join(found.get('cpu_bf16_flags') or []) or 'none'
  return (f"runs in {found['dtype']}"
          + (f" ({found['reason']})" if found['reason'] else '')
          + f'; CPU bfloat16 flags: {flags}')


def readme(records: List[Dict], context: Dict) -> str:
  machine = context['machine']
  scale = context['scale']
  upstream = '; '.join(
      f"{u['upstream']} seed {u['seed']}: {u['images']} images, top-1 "
      f"{u['top1']:.3f}" for u in sorted(
          context['upstream'], key=lambda u: (u['upstream'], u['seed'])))
  return '\n'.join([
      '# Shapes-world mini-reproduction of Tables 1 and 3, Figures 1 and 4',
      '',
      'Produced by one command (resumable; finished runs are kept in '
      '[runs/](runs/)):',
      '',
      f'    {context["command"]}',
      '',
      f'Machine: {machine["cpus"]} CPUs ({machine["processor"]}), '
      f'{machine["memory_gb"]} GB RAM, Python {machine["python"]}, '
      f'TensorFlow {machine["tensorflow"]}; {_precision(context)}. '
      'Wall time of all stages: '
      f'{wall_minutes(records, context):.1f} min '
      f'(generating the world, {len(context["upstream"])} upstream and '
      f'{len(records)} detector runs; the last invocation took '
      f'{context["this_invocation_seconds"] / 60:.1f} min).',
      '',
      f'Scale: {scale["detection_train"]} train / {scale["detection_val"]} '
      f'val detection images, {scale["detector_steps"]} detector steps per '
      f'run; upstream {scale["upstream_steps"]} steps ({upstream}).',
      '',
      'Files: [table1.md](table1.md), [table3.md](table3.md), '
      '[figure1.png](figure1.png), [figure4.png](figure4.png), '
      f'[{SUMMARY}]({SUMMARY}).',
      '',
      '## The paper\'s claims, paired by seed',
      '',
      'Each difference is computed per seed (freeze and fine-tune runs of a '
      'seed start from the same upstream checkpoint); the interval is '
      'Student\'s t 95 % interval of the mean. Reproduced: the interval '
      'lies on the side of 0 the paper reports; contradicted: on the other '
      'side; inconclusive: it contains 0 (or one seed only). Seeds '
      'needed: how many seeds an interval at the measured mean and spread '
      'would need to exclude 0 (none: the mean is 0 or too small for 1000 '
      'seeds). Paper values: experiments/paper_tables.yaml.',
      '',
      claims.table(claims.claims(records)),
      '',
      '## Schedule length (Cascade R-CNN NAS-FPN)',
      '',
      'Box AP × 100 at the grid\'s schedule and at the long one, over the '
      'seeds both have; each schedule anneals over its own run.',
      '',
      schedule_table(records),
      '',
      '## Partial freezing (an extension)',
      '',
      'Box AP × 100, large upstream, grid schedule: partialK freezes the '
      'stem and block groups 1..K of the ResNet-18 (of 4) and fine-tunes '
      'the rest; over the seeds every cell of a row has. Its claims are in '
      'the table above.',
      '',
      partial_table(records),
      '',
      '## Further readings of the numbers',
      '',
      'Each difference: the mean of the per-seed differences over the seeds '
      'both cells have (grid schedule); ratios: of medians over seeds and '
      'upstreams.',
      '',
      *findings(claims.on_grid_schedule(records)),
      '',
      '## Where the time went',
      '',
      time_table(where_the_time_went(records, context)),
      '',
  ])


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


def write_curve(records: List[Dict], context: Dict, report_dir: str) -> None:
  """curve.md: the learning curves the grid's schedule is chosen from."""
  os.makedirs(report_dir, exist_ok=True)
  scale = context['scale']
  _write(report_dir, 'curve.md', '\n'.join([
      '# Learning curves of the Shapes grid (box AP × 100, val)', '',
      f'Produced by `{context["command"]}`: {scale["detector_steps"]} steps '
      f'of batch 8 on {scale["detection_train"]} images, large upstream, '
      'seed 0, evaluated at the checkpoints the trainer wrote at each '
      'quarter of the schedule (one training loop per quarter). The '
      'schedule anneals over the whole run, so earlier '
      'points are not shorter schedules. A schedule is long enough when the '
      'last interval adds less than 1 AP.', '', learning_curves(records),
      '']))


def _write(directory: str, name: str, text: str) -> None:
  path = os.path.join(directory, name)
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)
