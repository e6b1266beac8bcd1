"""Writes the Shapes grid's report: Tables 1 and 3, Figures 1 and 4, the
paper's claims with intervals, summary.json; and the learning curves. The
tables are in tables.py, the figures in figures.py, the claims (pairing,
intervals, verdicts) in claims.py; this module puts them together.

Input: one record per run (what shapes/grid_runner.py commits to
REPORT_DIR/runs/NAME.json) and a context dict (command, machine, upstream
records, training annotations per class). Everything printed comes from
those records; nothing is typed in.
"""
import collections
import json
import os
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from backbone_reuse.shapes import claims
from backbone_reuse.shapes import figures
from backbone_reuse.shapes import long_schedule
from backbone_reuse.shapes import records as record_store
from backbone_reuse.shapes import tables
from backbone_reuse.shapes.experiments import CAPACITIES
from backbone_reuse.shapes.experiments import CAPACITY_TITLES
from backbone_reuse.shapes.experiments import UPSTREAMS

SUMMARY = 'summary.json'
SCHEDULE_FIGURE = 'long_schedule.png'


def _delta(cells, capacity, upstream, kind='box', name='AP'):
  """freeze - finetune x 100, paired by seed."""
  return claims.paired(cells, capacity, upstream, 'freeze', 'finetune', kind,
                       name)

def findings(records: List[Dict]) -> List[str]:
  """Further readings of the grid's numbers: differences and ratios only
  (the verdicts are the claims')."""
  groups = tables.group(records)
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
        values = [[tables.resource(r, field) for r in runs]
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
  found = {'wall_minutes': wall_minutes(records, context),
           'time': where_the_time_went(records, context),
           'upstream': upstream, 'cells': cells,
           'claims': claims.claims(records)}
  if 'long_schedule' in context:
    found['long_schedule'] = context['long_schedule']
    found['claims_at_long'] = context.get('claims_at_long', [])
  return found

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
    text += [f'## {title}', '', tables.table1(grid, kind, name), '']
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
      '', tables.table3(grid), '']))
  figures.figure1(grid, os.path.join(report_dir, 'figure1.png'))
  figures.figure4(grid, {name: c['instances']
                 for name, c in context['annotations'].items()},
          os.path.join(report_dir, 'figure4.png'))
  _write(report_dir, 'README.md', readme(records, context))
  _write(report_dir, SUMMARY,
         json.dumps(summary(records, context), indent=1) + '\n')

def write_long_schedule(choice: Dict, measured: List[Dict],
                        report_dir: str,
                        at_long: Sequence[Dict] = (),
                        points: Optional[Dict] = None,
                        capacity: str = 'nasfpn_cascade') -> None:
  """long_schedule.md: the schedule pilot's dev scores, the long schedule
  L they choose, how far each backbone of `measured` (the pilot's and the
  headline's runs) moved from its upstream,
  `at_long`, the claims judged at L on val (claims.at_steps), and
  `points`, val box AP per strategy, step count and seed of `capacity`
  (long_schedule.val_ap_by_steps), as a table and long_schedule.png."""
  text = ['# The long schedule L (the schedule pilot, dev split)', '',
          long_schedule.describe(choice), '',
          f'Rule: {choice["rule"]}. Seeds with every pilot run: '
          f'{", ".join(map(str, choice["seeds"])) or "none yet"}.', '']
  scores = long_schedule.table(choice)
  if scores:
    text += ['Dev box AP × 100, pilot means:', '', scores, '']
  if choice['seeds_with_several_upstreams']:
    text += ['Seeds whose runs started from more than one upstream '
             'checkpoint (retrained on another machine; their doubling gains '
             "keep the upstream's training noise): " + ', '.join(
                 map(str, choice['seeds_with_several_upstreams'])) + '.', '']
  if at_long:
    text += [f'## The claims at L = {choice["L"]} steps (val split)', '',
             'Box AP × 100 on val, the claim\'s own test split (L was chosen '
             'on dev); each freeze/finetune pair of a seed starts from one '
             'upstream checkpoint.', '', claims.table(at_long), '']
  if points and any(points.values()):
    figures.schedule_figure(
        points, f'{CAPACITY_TITLES[capacity]}, large upstream, val split',
        os.path.join(report_dir, SCHEDULE_FIGURE))
    text += ['## Box AP against detector steps (val split)', '',
             'Mean val box AP × 100 over the seeds each schedule has (their '
             'number in brackets), every run annealed over its own schedule: '
             'the grid\'s runs, its schedule study\'s, the pilot\'s and the '
             'headline\'s (where a pilot run retrained a grid run of the same '
             'seed and steps, from another upstream checkpoint, the pilot\'s '
             f'is read). Per-seed points: [{SCHEDULE_FIGURE}]'
             f'({SCHEDULE_FIGURE}).', '', long_schedule.steps_table(points),
             '']
  drift = long_schedule.drift_table(measured)
  if drift:
    text += ['## How far each backbone moved from its upstream checkpoint',
             '', 'Relative L2 distance ||w − w0|| / ||w0|| per block group '
             '(BatchNorm statistics excluded), and the upstream val top-1 '
             "under the upstream run's own classifier, with its backbone "
             'and then with this run\'s.', '', drift, '']
  _write(report_dir, 'long_schedule.md', '\n'.join(text))

def _precision(context: Dict) -> str:
  found = context.get('precision') or {'dtype': 'float32', 'reason': ''}
  flags = ', '.join(found.get('cpu_bf16_flags') or []) or 'none'
  return (f"runs in {found['dtype']}"
          + (f" ({found['reason']})" if found['reason'] else '')
          + f'; CPU bfloat16 flags: {flags}')

def _long_claims(context: Dict) -> List[str]:
  """The claims at the long schedule L, the primary verdicts of the Table 1
  claims (long_schedule.md has how L was chosen)."""
  choice = context.get('long_schedule') or {}
  if not choice.get('L'):
    return []
  found = context.get('claims_at_long') or []
  return [f'### At the long schedule L = {choice["L"]:,} steps (primary for '
          'Table 1)', '',
          'The paper\'s Table 1 is a long-schedule result, so its claims are '
          'judged here first. L was chosen on the dev split '
          '([long_schedule.md](long_schedule.md)); '
          + long_schedule.describe(choice), '',
          claims.table(found) if found else 'No claim has a seed at L yet.',
          '']


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
      *_long_claims(context),
      f'### At the grid\'s schedule ({scale["detector_steps"]:,} steps)',
      '',
      'For the Table 1 claims, the short-schedule analogue (the paper\'s '
      'Table 1 is measured at its long schedule; its shorter schedules are '
      'in its Appendix C). The schedule-length claims compare the grid\'s '
      'schedule with the longer one of the schedule study.',
      '',
      claims.table(claims.claims(records), scale['detector_steps']),
      '',
      '## Schedule length (Cascade R-CNN NAS-FPN)',
      '',
      'Box AP × 100 at the grid\'s schedule and at the long one, over the '
      'seeds both have; each schedule anneals over its own run.',
      '',
      tables.schedule_table(records),
      '',
      '## Partial freezing (an extension)',
      '',
      'Box AP × 100, large upstream, grid schedule: partialK freezes the '
      'stem and block groups 1..K of the ResNet-18 (of 4) and fine-tunes '
      'the rest; over the seeds every cell of a row has. Its claims are in '
      'the table above.',
      '',
      tables.partial_table(records),
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
      tables.time_table(where_the_time_went(records, context)),
      '',
  ])

def write_curve(records: List[Dict], context: Dict, report_dir: str) -> None:
  """curve.md: the learning curves the grid's schedule is chosen from."""
  os.makedirs(report_dir, exist_ok=True)
  scale = context['scale']
  _write(report_dir, 'curve.md', '\n'.join([
      '# Learning curves of the Shapes grid (box AP × 100, val)', '',
      f'Produced by `{context["command"]}`: {scale["detector_steps"]} steps '
      f'of batch {records[0]["batch_size"]} on {scale["detection_train"]} '
      'images, large upstream, '
      'seed 0, evaluated at the checkpoints the trainer wrote at each '
      'quarter of the schedule (one training loop per quarter). The '
      'schedule anneals over the whole run, so earlier '
      'points are not shorter schedules. A schedule is long enough when the '
      'last interval adds less than 1 AP.', '', tables.learning_curves(records),
      '']))

def _write(directory: str, name: str, text: str) -> None:
  record_store.write_text(os.path.join(directory, name), text)
