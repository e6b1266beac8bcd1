"""The Shapes grid's design: which detector runs it trains (Run, GridScale,
SCALES) and the committed YAMLs each run is built from. Orchestration (data,
upstreams, training, records, the report) is in grid_runner.py.

The grid (one Shapes world; the same schedule in every cell but the
schedule-length study's):
  capacity  fpn | nasfpn | nasfpn_cascade    box-only Faster / Cascade R-CNN
                                             (configs/shapes/capacity/)
  strategy  scratch | finetune | freeze      configs/strategies/
            (+ adapters: the most capacity, large upstream; Table 7)
            (+ partial, k = 1 | 3 frozen block groups: FPN and Cascade
             R-CNN NAS-FPN, large upstream, seeds 0-2; an extension)
  upstream  small | large                    Shapes classification sets
  seed      as many as the claims need (GridScale: 8 for Cascade R-CNN
            NAS-FPN finetune | freeze on the large upstream, 5 for NAS-FPN
            and for the small-upstream and adapters Cascade cells, 3 for
            FPN, 2 elsewhere)
  schedule  the grid's, and 2x for Cascade R-CNN NAS-FPN finetune | freeze,
            large | small upstream, 3 seeds (the paper's observation 1)
A detector run with seed s starts from the upstream trained with seed s, so
cells pair by seed.
"""
import dataclasses
from typing import List, Mapping, Optional, Sequence, Tuple

from backbone_reuse import package_data
from backbone_reuse.configs import strategies
from backbone_reuse.shapes import claims
from backbone_reuse.shapes import experiments

CONFIGS = package_data.root() / package_data.CONFIGS

# The adapters cells' setting, chosen by the adapters study on its dev split.
ADAPTERS_CHOICE = CONFIGS / 'shapes' / 'adapters.yaml'

@dataclasses.dataclass(frozen=True)
class Run:
  """One detector training of the grid."""
  capacity: str
  strategy: str
  upstream: Optional[str] = None
  seed: int = 0
  # Detector steps when not the scale's (the schedule-length study).
  steps: Optional[int] = None
  precision: str = 'float32'  # Or 'bfloat16' (runtime.mixed_precision_dtype).
  # task.frozen_stages of a 'partial' run (the stem and block groups 1..k
  # frozen); None for every other strategy.
  frozen_stages: Optional[int] = None

  def __post_init__(self):
    for field, value, accepted in (
        ('capacity', self.capacity, experiments.CAPACITIES),
        ('strategy', self.strategy, experiments.STRATEGIES)):
      if value not in accepted:
        raise ValueError(f'{field}={value!r}; accepted: {", ".join(accepted)}')
    if (self.strategy == 'scratch') != (self.upstream is None):
      raise ValueError(f'{self.strategy} with upstream={self.upstream!r}: '
                       'scratch takes no upstream, the others one of '
                       f'{", ".join(experiments.UPSTREAMS)}')
    if self.upstream not in (None, *experiments.UPSTREAMS):
      raise ValueError(f'upstream={self.upstream!r}; accepted: '
                       f'{", ".join(experiments.UPSTREAMS)}')
    if self.steps is not None and self.steps <= 0:
      raise ValueError(f'steps={self.steps}; accepted: a positive number')
    if self.precision not in _PRECISIONS:
      raise ValueError(f'precision={self.precision!r}; accepted: '
                       f'{", ".join(_PRECISIONS)}')
    if (self.strategy == strategies.PARTIAL) != (
        self.frozen_stages is not None):
      raise ValueError(
          f'{self.strategy} with frozen_stages={self.frozen_stages!r}: '
          'partial takes the number of frozen block groups, the other '
          'strategies none')

  @property
  def strategy_label(self) -> str:
    """The strategy as the grid's cells name it: 'partial3' for partial
    freezing with k = 3, else the strategy."""
    return claims.strategy_label(dataclasses.asdict(self))

  @property
  def name(self) -> str:
    # float32 runs keep the names (and records) they had before precision
    # was a choice; bfloat16 runs never share a name with them.
    parts = [self.capacity, self.strategy_label, self.upstream,
             f's{self.seed}',
             f'{self.steps}steps' if self.steps else None,
             precision_suffix(self.precision)]
    return '_'.join(p for p in parts if p)

  def config_files(self, chosen_adapters: bool = True) -> Tuple[str, ...]:
    """The committed YAMLs of the run. An adapters cell adds the setting
    the adapters study chose on its dev split (ADAPTERS_CHOICE) unless
    `chosen_adapters` is False (the study's reference: the strategy's own
    defaults)."""
    files = (str(CONFIGS / 'shapes' / 'capacity' / f'{self.capacity}.yaml'),
             str(CONFIGS / 'strategies' / f'{self.strategy}.yaml'))
    if self.strategy == 'adapters' and chosen_adapters:
      files += (str(ADAPTERS_CHOICE),)
    return files

_PRECISIONS = ('float32', 'bfloat16')

def precision_suffix(precision: str) -> Optional[str]:
  return None if precision == 'float32' else precision

def _seeds(*ranges) -> Tuple[int, ...]:
  return tuple(seed for r in ranges for seed in r)

@dataclasses.dataclass(frozen=True)
class GridScale:
  """Data sizes, schedules and which runs."""
  upstream_small: int
  upstream_large: int
  upstream_val: int
  detection_train: int
  detection_val: int
  upstream_steps: int
  detector_steps: int
  steps_per_loop: int
  dev_images: int  # The dev split's (shapes/dev_split.py).
  # Peak of the detectors' cosine schedule (warm-up from a tenth of it);
  # None: the experiment's own (shapes_fasterrcnn: 0.08).
  detector_learning_rate: Optional[float] = None
  capacities: Tuple[str, ...] = experiments.CAPACITIES
  # The seeds of each cell. Seed s of a detector starts from the upstream
  # trained with seed s, so cells pair by seed. The counts follow what each
  # claim needs (claims.CLAIMS; seeds_needed in the report); seeds 0-2 are
  # the first grid's, later ones skip 2 where that upstream is not needed.
  large_seeds: Mapping[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=lambda: {'fpn': _seeds(range(3)),
                               'nasfpn': _seeds(range(5)),
                               'nasfpn_cascade': _seeds(range(8))})
  small_seeds: Mapping[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=lambda: {'fpn': (0, 1), 'nasfpn': (0, 1),
                               'nasfpn_cascade': _seeds((0, 1), range(3, 6))})
  scratch_seeds: Tuple[int, ...] = (0, 1)
  adapters_seeds: Tuple[int, ...] = _seeds((0, 1), range(3, 6))
  # The schedule-length study (the paper's observation 1, Table 2): Cascade
  # R-CNN NAS-FPN, finetune | freeze, large | small upstream, at
  # `long_steps` as well as at `detector_steps`. None: not run.
  long_steps: Optional[int] = 3000
  long_seeds: Tuple[int, ...] = _seeds(range(3, 6))
  # The schedule pilot (the paper's Table 1 is a long-schedule result):
  # `pilot_capacity`, finetune | freeze, large upstream, on the seeds
  # that have grid- and long-schedule twins, at each step count of
  # `pilot_steps`; the long schedule L is chosen from their dev-split scores
  # (long_schedule.py), never from val.
  pilot_steps: Tuple[int, ...] = (3000, 6000, 12000)
  pilot_seeds: Tuple[int, ...] = (3, 4)
  pilot_capacity: str = 'nasfpn_cascade'
  # The headline at L (the step count the pilot chose): the pilot's
  # capacity, finetune | freeze, large upstream, on `headline_seeds` (the
  # pilot's first: their runs at L are the pilot's own), then on
  # `headline_more_seeds` one at a time while the claim's seeds_needed
  # exceeds the seeds it has.
  headline_seeds: Tuple[int, ...] = _seeds(range(3, 8))
  headline_more_seeds: Tuple[int, ...] = _seeds(range(3))
  # After the headline, the other Table 1 claims at L, freeze/finetune
  # pairs on these seeds: the capacity claim (`fpn`, large upstream; FPN
  # steps are cheap), then the upstream-size claim (the pilot's capacity,
  # small upstream).
  at_long_fpn_seeds: Tuple[int, ...] = _seeds(range(3, 6))
  at_long_small_seeds: Tuple[int, ...] = _seeds(range(3, 6))
  # Partial freezing (an extension; mmdetection's frozen_stages): the stem
  # and block groups 1..k frozen, k in `partial_stages` (why these: claims.py),
  # on `partial_capacities` with the large upstream, seeds `partial_seeds`
  # (per capacity), paired with the finetune and freeze cells of those
  # seeds. Cascade R-CNN's partial3 claims needed 4 and 5 seeds at 3
  # (the report's seeds_needed), hence its 5.
  partial_stages: Tuple[int, ...] = claims.PARTIAL_STAGES
  partial_capacities: Tuple[str, ...] = claims.PARTIAL_CAPACITIES
  partial_seeds: Mapping[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=lambda: {'fpn': _seeds(range(3)),
                               'nasfpn_cascade': _seeds(range(5))})
  # What every run computes in (upstreams too): part of each run's name and
  # key, so float32 and bfloat16 records never mix.
  precision: str = 'float32'

  def grid(self) -> List[Run]:
    """Every run, in the order they train: by seed, so that the runs that
    start from one upstream checkpoint train one after another (on one
    machine, from the same checkpoint: a retrained upstream is not
    bit-identical); the adapters cells last (their setting is chosen on
    the dev split)."""
    found = []
    for capacity in self.capacities:
      for upstream, seeds in (('large', self.large_seeds),
                              ('small', self.small_seeds)):
        found += [Run(capacity, strategy, upstream, seed)
                  for seed in seeds.get(capacity, ())
                  for strategy in experiments.PAIR]
      found += [Run(capacity, 'scratch', None, seed)
                for seed in self.scratch_seeds]
    if 'nasfpn_cascade' in self.capacities:
      if self.long_steps and self.long_steps != self.detector_steps:
        found += [Run('nasfpn_cascade', strategy, upstream, seed,
                      self.long_steps)
                  for upstream in experiments.UPSTREAMS
                  for seed in self.long_seeds
                  for strategy in experiments.PAIR]
      found += [Run('nasfpn_cascade', 'adapters', 'large', seed)
                for seed in self.adapters_seeds]
    found += [Run(capacity, strategies.PARTIAL, 'large', seed,
                  frozen_stages=k)
              for capacity in self.partial_capacities
              if capacity in self.capacities
              for seed in self.partial_seeds.get(capacity, ())
              for k in self.partial_stages]
    upstreams = {'large': 0, 'small': 1, None: 2}
    # The cells added after the first grid train after it, in the order
    # they were added.
    later = {'adapters': 1, strategies.PARTIAL: 2}
    found = [dataclasses.replace(r, precision=self.precision) for r in found]
    return sorted(found, key=lambda r: (later.get(r.strategy, 0), r.seed,
                                        upstreams[r.upstream],
                                        r.steps or 0))

  def pilot(self) -> List[Run]:
    """The schedule pilot's runs, per seed and shortest first, each
    freeze/finetune pair together: a pair starts from one upstream
    checkpoint, and a session that stops between runs leaves whole pairs
    (a new machine retrains the upstream, which is not bit-identical)."""
    return [Run(self.pilot_capacity, strategy, 'large', seed, steps,
                self.precision)
            for seed in self.pilot_seeds
            for steps in sorted(self.pilot_steps)
            for strategy in experiments.PAIR[::-1]]  # Freeze first.

  def headline(self, steps: int, seeds: Sequence[int]) -> List[Run]:
    """The headline's runs at `steps` on `seeds`, per seed, each
    freeze/finetune pair together (as the pilot's)."""
    return [Run(self.pilot_capacity, strategy, 'large', seed, steps,
                self.precision)
            for seed in seeds for strategy in experiments.PAIR[::-1]]

  def after_headline(self, steps: int) -> List[Run]:
    """The capacity and upstream-size claims' runs at `steps`, in the order
    they train (per claim, per seed, freeze/finetune pairs together)."""
    return [Run(capacity, strategy, upstream, seed, steps, self.precision)
            for capacity, upstream, seeds in (
                ('fpn', 'large', self.at_long_fpn_seeds),
                (self.pilot_capacity, 'small', self.at_long_small_seeds))
            for seed in seeds for strategy in experiments.PAIR[::-1]]

  def curve(self) -> List[Run]:
    return [Run(capacity, strategy, 'large', 0, precision=self.precision)
            for capacity in self.capacities
            for strategy in experiments.PAIR]

SCALES = {
    'default': GridScale(upstream_small=1000, upstream_large=10000,
                         upstream_val=1000, detection_train=800,
                         detection_val=200, upstream_steps=1600,
                         detector_steps=1500, steps_per_loop=50,
                         dev_images=200),
    'quick': GridScale(upstream_small=64, upstream_large=160, upstream_val=40,
                       detection_train=40, detection_val=40,
                       upstream_steps=4, detector_steps=8, steps_per_loop=2,
                       dev_images=40,
                       capacities=('fpn',), large_seeds={'fpn': (0, 1)},
                       small_seeds={}, scratch_seeds=(), adapters_seeds=(),
                       long_steps=None, long_seeds=(), partial_seeds={},
                       pilot_steps=(12,), pilot_seeds=(0,),
                       pilot_capacity='fpn', headline_seeds=(0, 1),
                       headline_more_seeds=(), at_long_fpn_seeds=(),
                       at_long_small_seeds=()),
}
