r"""Why residual adapters lose to plain freezing here: one hypothesis at a time.

  python -m backbone_reuse.shapes.adapters_study [--output_dir=runs/shapes_grid] \
      [--study_dir=experiments/shapes/adapters_study] [--seeds=3,4]
  python -m backbone_reuse.shapes.adapters_study --report_only
  python -m backbone_reuse.shapes.adapters_study --quick   # what tests run

Every variant is the grid's adapters cell (Cascade R-CNN NAS-FPN, large
upstream, the grid's schedule and training set; seed s starts from the
upstream trained with seed s) at the strategy's defaults
(configs/strategies/adapters.yaml) with one thing changed in `task.adapters`,
or plain `freeze` for reference. VARIANTS names each and the hypothesis it
tests. Each run is scored on the dev split only (shapes/dev_split.py: scenes of
the grid's world drawn with another seed). The validation split the grid reports is never read here, so the
setting `summarise` chooses for the grid's adapters cells is not tuned on the
split those cells are scored on. The grid applies the choice through
configs/shapes/adapters.yaml (tests hold the file to summary.json's choice).

The study shares the grid's output directory (its data and upstream
checkpoints) and resumes the same way: each finished run's record goes to
STUDY_DIR/runs/NAME.json with its config key, and a run whose committed record
has the key it would have now is not trained again.
"""
import dataclasses
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
from typing import Dict, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging

from backbone_reuse import errors
from backbone_reuse.analysis import intervals
from backbone_reuse.analysis import resources
from backbone_reuse.shapes import design as shapes_design
from backbone_reuse.shapes import dev_split
from backbone_reuse.shapes import grid_runner
from backbone_reuse.shapes import records
from backbone_reuse.shapes import runs
from backbone_reuse.shapes import stages

DEV = dev_split.NAME  # The only split a study record carries metrics for.
DEFAULT_SEEDS = (3, 4)
CAPACITY = 'nasfpn_cascade'
# The strategy's own defaults (configs/strategies/adapters.yaml): the grid's
# adapters setting before the study chose one.
REFERENCE = 'adapters'
RECORDS = 'runs'


@dataclasses.dataclass(frozen=True)
class Variant:
  """One setting of the study and the hypothesis it tests."""
  name: str
  hypothesis: str
  strategy: str = 'adapters'
  adapters: Tuple[Tuple[str, object], ...] = ()  # task.adapters overrides.


# In the order they train (the most telling first, so a partial study says
# the most).
VARIANTS = (
    Variant('freeze', 'reference: no adapters (the frozen backbone)',
            strategy='freeze'),
    Variant(REFERENCE, "reference: the strategy's defaults (series, every "
            "block group, full width, zero init, the heads' learning rate, "
            'weight decay 1e-4)'),
    Variant('lr_x0.1', 'adapters learn too fast and pull the frozen '
            "features away: a tenth of the heads' learning rate",
            adapters=(('learning_rate_multiplier', 0.1),)),
    Variant('levels_4_5', 'adapting the early, generic block groups hurts: '
            'adapters in groups 4-5 only', adapters=(('levels', [4, 5]),)),
    Variant('reduction_4', 'full-width adapters have too much capacity for '
            '800 training images: C -> C/4 -> C',
            adapters=(('reduction', 4),)),
    Variant('parallel', 'the series form (after the conv, on its output) is '
            'the wrong one: parallel, beside the conv',
            adapters=(('type', 'parallel'),)),
    Variant('he_init', 'zero init starts too timidly: He init (as Rebuffi '
            'et al.)', adapters=(('zero_init', False),)),
    Variant('lr_x3', "adapters learn too slowly: 3x the heads' learning "
            'rate', adapters=(('learning_rate_multiplier', 3.0),)),
    Variant('wd_1e-2', 'adapters need a pull back to the frozen function: '
            'weight decay 1e-2 on them (1e-4 shrinks a kernel by only '
            '~6 % over the schedule, momentum included)',
            adapters=(('l2_weight_decay', 1e-2),)),
)
_BY_NAME = {v.name: v for v in VARIANTS}


def variant(name: str) -> Variant:
  if name not in _BY_NAME:
    raise ValueError(f'variant={name!r}; accepted: {", ".join(_BY_NAME)}')
  return _BY_NAME[name]


def record_name(variant_name: str, seed: int) -> str:
  return f'{variant_name}_s{seed}'


class AdaptersStudy:
  """Trains VARIANTS x seeds beside the grid; scores each on the dev split."""

  def __init__(self, output_dir: str, study_dir: str, grid_report_dir: str,
               quick: bool = False, seeds: Sequence[int] = DEFAULT_SEEDS,
               variants: Sequence[str] = tuple(_BY_NAME)):
    scale = shapes_design.SCALES['quick' if quick else 'default']
    self.grid = grid_runner.ShapesGrid(output_dir, scale, grid_report_dir)
    self.study_dir = os.path.abspath(study_dir)
    self.seeds = tuple(seeds)
    self.variants = [variant(v) for v in variants]
    self.dev = self.grid.dev
    self.records = records.RecordStore(os.path.join(self.study_dir, RECORDS))

  # -- runs -------------------------------------------------------------------
  def run_of(self, v: Variant, seed: int) -> shapes_design.Run:
    return shapes_design.Run(CAPACITY, v.strategy, 'large', seed,
                           precision=self.grid.scale.precision)

  def training(self, v: Variant, seed: int) -> runs.Training:
    """The grid's training of the cell at the strategy's defaults, its
    adapters changed as `v` says, its validation data and annotations the
    dev split's."""
    scored = self.dev.scored_on(
        self.grid.training(self.run_of(v, seed), chosen_adapters=False))
    if v.adapters:
      scored.overrides['task']['adapters'] = dict(v.adapters)
    return scored

  def key(self, v: Variant, seed: int) -> str:
    run = self.run_of(v, seed)
    return runs.config_key(
        runs.without_checkpointing(self.training(v, seed).params()),
        self.grid.upstream_key(run.upstream, seed),
        self.grid.data_identity, {DEV: self.dev.identity})

  def train_and_score(self, v: Variant, seed: int, label: str) -> Dict:
    name = record_name(v.name, seed)
    key = self.key(v, seed)
    record = self.records.committed(name, key)
    if record:
      print(f'[{label}] committed result reused ({self.records.path(name)}).',
            flush=True)
      return record
    self.grid.upstream('large', seed, data_redone=False)
    model_dir = self.grid.path('adapters_study', name)
    training = self.training(v, seed)

    def work():
      runs.train(training, model_dir, 'train', name)
      results, _ = runs.evaluate(training, model_dir, self.dev.images)
      return {'train_steps': training.params().trainer.train_steps,
              'box': runs.headline(results['box'])}

    marker = stages.run_stage(
        model_dir, label, 'train, and score on the dev split', work,
        lambda m: stages.verify_checkpoint(model_dir, m['train_steps']),
        resumable=True, identity=key)
    record = {
        'key': key, 'name': name, 'variant': v.name, 'seed': seed,
        'strategy': v.strategy, 'adapters': dict(v.adapters),
        'split': DEV, DEV: marker['box'], 'seconds': marker['seconds'],
        'upstream_checkpoint': runs.checkpoint_digest(
            self.grid.path(self.grid.upstream_name('large', seed))),
        'resources': runs.load_json(model_dir, resources.FILENAME)}
    self.records.commit(name, record)
    return record

  def run(self, report_only: bool = False) -> Dict:
    todo = [(v, s) for v in self.variants for s in self.seeds]
    if report_only:
      done = [r for r in (self.records.committed(record_name(v.name, s),
                                                 self.key(v, s))
                          for v, s in todo) if r]
    else:
      stages.run_stage(self.grid.data, 'data', 'generate the Shapes world',
                       self.grid.make_data, self.grid.demo.verify_data)
      self.dev.ensure()
      done = [self.train_and_score(v, s, f'{i}/{len(todo)} '
                                   f'{record_name(v.name, s)}')
              for i, (v, s) in enumerate(todo, 1)]
    found = summarise(done)
    os.makedirs(self.study_dir, exist_ok=True)
    records.write_json(os.path.join(self.study_dir, 'summary.json'), found)
    records.write_text(os.path.join(self.study_dir, 'results.md'),
                       results_table(found))
    print(f'Study written to {self.study_dir}', flush=True)
    return found


def _dev_ap(record: Dict) -> float:
  if record.get('split') != DEV or DEV not in record:
    raise ValueError(f'record {record.get("name")!r} has no {DEV!r} metrics '
                     f'(split={record.get("split")!r}); the study chooses on '
                     'the dev split only.')
  return record[DEV]['AP']


def summarise(records: Sequence[Dict]) -> Dict:
  """Per variant: dev box AP per seed and mean, and paired differences
  against the strategy's defaults (REFERENCE) and against freeze; `choice`: the
  adapters variant with the highest mean dev AP over the seeds every
  variant in it has (only complete variants compete)."""
  by_variant: Dict[str, Dict[int, float]] = {}
  for record in records:
    by_variant.setdefault(record['variant'], {})[record['seed']] = (
        _dev_ap(record))
  rows = []
  for v in VARIANTS:
    if v.name not in by_variant:
      continue
    seeds = sorted(by_variant[v.name])
    row = {'variant': v.name, 'hypothesis': v.hypothesis,
           'adapters': dict(v.adapters), 'strategy': v.strategy,
           'seeds': seeds, 'AP': [by_variant[v.name][s] for s in seeds]}
    row['mean_AP'] = sum(row['AP']) / len(seeds)
    for reference in ('freeze', REFERENCE):
      common = [s for s in seeds if s in by_variant.get(reference, {})]
      if reference != v.name and common:
        row[f'minus_{reference}'] = intervals.paired_interval(
            [by_variant[v.name][s] for s in common],
            [by_variant[reference][s] for s in common])
    rows.append(row)
  complete = max((len(r['seeds']) for r in rows), default=0)
  candidates = [r for r in rows if r['strategy'] == 'adapters'
                and len(r['seeds']) == complete]
  choice = max(candidates, key=lambda r: r['mean_AP'], default=None)
  return {'split': DEV, 'rows': rows,
          'choice': choice and {'variant': choice['variant'],
                                'adapters': choice['adapters'],
                                'mean_AP': choice['mean_AP'],
                                'seeds': choice['seeds']}}


def _interval(paired: Optional[Dict]) -> str:
  if not paired:
    return ''
  text = f'{100 * paired["difference_mean"]:+.1f}'
  if paired['interval']:
    lo, hi = paired['interval']
    text += f' [{100 * lo:+.1f}, {100 * hi:+.1f}]'
  return text


def results_table(found: Dict) -> str:
  lines = [
      '# Adapters study: dev-split box AP (x100)', '',
      'Written by `python -m backbone_reuse.shapes.adapters_study` from the '
      'records in runs/. Cascade R-CNN NAS-FPN, large upstream, the grid\'s '
      'schedule; scored on the dev split only (another seed of the world, '
      'image ids disjoint from the validation split). Differences are paired '
      'by seed, with 95 % t intervals.', '',
      '| variant | hypothesis | seeds | AP per seed | mean | − adapters | '
      '− freeze |', '|---|---|---|---|---|---|---|']
  for row in found['rows']:
    lines.append(
        f'| {row["variant"]} | {row["hypothesis"]} | '
        f'{", ".join(map(str, row["seeds"]))} | '
        f'{", ".join(f"{100 * a:.1f}" for a in row["AP"])} | '
        f'{100 * row["mean_AP"]:.1f} | '
        f'{_interval(row.get("minus_" + REFERENCE))} | '
        f'{_interval(row.get("minus_freeze"))} |')
  choice = found['choice']
  lines += ['', 'Chosen for the grid (highest mean dev AP among the adapters '
            'variants with every seed): ' + (
                f'**{choice["variant"]}** ({100 * choice["mean_AP"]:.1f}, '
                f'seeds {", ".join(map(str, choice["seeds"]))}).'
                if choice else 'none yet.'), '']
  return '\n'.join(lines)


def main(_):
  logging.set_verbosity(logging.WARNING)
  try:
    seeds = [int(s) for s in FLAGS.seeds]
    study = AdaptersStudy(FLAGS.output_dir, FLAGS.study_dir,
                          FLAGS.grid_report_dir, FLAGS.quick, seeds,
                          FLAGS.variants or tuple(_BY_NAME))
  except ValueError as error:
    errors.report_bad_input(error)
  study.run(FLAGS.report_only)


if __name__ == '__main__':
  flags.DEFINE_string('output_dir', 'runs/shapes_grid',
                      "The grid's output directory (its data and upstream "
                      'checkpoints); the study trains under '
                      'OUTPUT_DIR/adapters_study/.')
  flags.DEFINE_string('study_dir', 'experiments/shapes/adapters_study',
                      'Records (runs/NAME.json), summary.json, results.md.')
  flags.DEFINE_string('grid_report_dir', 'experiments/shapes/report',
                      "The grid's report directory (its upstream records).")
  flags.DEFINE_list('seeds', [str(s) for s in DEFAULT_SEEDS],
                    'Seeds of every variant (seed s: upstream seed s).')
  flags.DEFINE_list('variants', [], 'Variants to run (default: all, in '
                    'order): ' + ', '.join(_BY_NAME))
  flags.DEFINE_bool('quick', False, 'Tiny world and schedule (tests).')
  flags.DEFINE_bool('report_only', False,
                    'Train nothing: summarise the committed records.')
  FLAGS = flags.FLAGS
  app.run(main)
