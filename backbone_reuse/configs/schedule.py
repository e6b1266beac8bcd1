"""A learning-rate schedule that follows `trainer.train_steps`.

A schedule is written for a number of steps: a cosine decays over
`decay_steps`, a stepwise schedule drops at `boundaries`, a warm-up lasts
`warmup_steps`. When a config layer (a YAML or `--params_override`) changes
`trainer.train_steps` and none of the schedule's step counts (it may change
its learning rates), every step count of the schedule is rescaled by
new / old steps, so that a shortened run still warms up, decays and anneals
where it was meant to, relatively. A layer that sets a step count too is
taken as it is. After all layers, `check` refuses a schedule that
cannot anneal within the run.
"""
from typing import List

from absl import logging

# The step counts of Model Garden's learning-rate and warm-up configs.
STEP_FIELDS = ('boundaries', 'decay_steps', 'total_decay_steps', 'offset',
               'warmup_steps')
# Fields that must be positive (a cosine over 0 steps divides by zero).
_POSITIVE = ('decay_steps', 'total_decay_steps', 'warmup_steps')
# Schedules whose step fields say where the decay ends (an exponential's
# `decay_steps` is a period instead).
_HORIZON_FIELDS = {'cosine': 'decay_steps', 'polynomial': 'decay_steps',
                   'power_linear': 'total_decay_steps'}
_BOUNDARY_TYPES = ('stepwise', 'step_cosine_with_offset')


def _schedules(trainer):
  optimizer = trainer.optimizer_config
  for name, oneof in (('learning_rate', optimizer.learning_rate),
                      ('warmup', optimizer.warmup)):
    config = oneof.get()
    if config is not None:
      yield f'{name}.{oneof.type}', config


def _scale(value: int, field: str, old: int, new: int) -> int:
  scaled = value * new // old
  return max(1, scaled) if field in _POSITIVE and value > 0 else scaled


def rescale(trainer, old_steps: int) -> List[str]:
  """Rescales every step count of the schedule from old_steps to train_steps.

  Args:
    trainer: an unlocked TrainerConfig whose train_steps was just changed.
    old_steps: the train_steps the schedule was written for.

  Returns:
    One 'field old -> new' string per changed field.
  """
  new_steps = trainer.train_steps
  changes = []
  for name, config in _schedules(trainer):
    for field in STEP_FIELDS:
      value = getattr(config, field, None)
      if not value:
        continue
      if isinstance(value, (list, tuple)):
        scaled = [_scale(v, field, old_steps, new_steps) for v in value]
        value = list(value)
      else:
        scaled = _scale(value, field, old_steps, new_steps)
      if scaled != value:
        setattr(config, field, scaled)
        changes.append(f'{name}.{field} {value} -> {scaled}')
  return changes


def sets_steps_alone(layer: dict) -> bool:
  """Whether a config layer (as a nested dict) sets train_steps and none of
  the schedule's step counts (it may set its learning rates)."""
  trainer = layer.get('trainer') or {}
  optimizer = trainer.get('optimizer_config') or {}
  return 'train_steps' in trainer and not any(
      _sets_step_field(optimizer.get(name) or {})
      for name in ('learning_rate', 'warmup'))


def _sets_step_field(oneof: dict) -> bool:
  return any(field in (sub or {}) for sub in oneof.values()
             if isinstance(sub, dict) for field in STEP_FIELDS)


def follow(trainer, old_steps: int, layer: dict, source: str) -> None:
  """After `layer` was applied: rescales the schedule's step counts if it set
  the steps and none of them (and changed the steps)."""
  if (not sets_steps_alone(layer) or not old_steps
      or trainer.train_steps == old_steps):
    return
  changes = rescale(trainer, old_steps)
  if changes:
    logging.info('%s sets trainer.train_steps %d -> %d and no step count of '
                 'the schedule: they follow it (%s).', source, old_steps,
                 trainer.train_steps, '; '.join(changes))


def check(trainer) -> None:
  """Refuses a schedule that would not anneal before the run ends.

  Args:
    trainer: a resolved TrainerConfig.

  Raises:
    ValueError: one line naming the schedule's field and train_steps.
  """
  steps = trainer.train_steps
  advice = ('the run would stop before its learning rate anneals; make them '
            'agree, or set trainer.train_steps alone (the schedule then '
            'follows it).')
  for name, config in _schedules(trainer):
    kind = name.split('.', 1)[1]
    offset = getattr(config, 'offset', 0) or 0
    field = _HORIZON_FIELDS.get(kind)
    if field and getattr(config, field) and (
        getattr(config, field) + offset > steps):
      raise ValueError(
          f'trainer.optimizer_config.{name}.{field}={getattr(config, field)}'
          f'{f" (+ offset {offset})" if offset else ""} is beyond '
          f'trainer.train_steps={steps}: {advice}')
    if kind in _BOUNDARY_TYPES and config.boundaries and (
        max(config.boundaries) + offset >= steps):
      raise ValueError(
          f'trainer.optimizer_config.{name}.boundaries='
          f'{list(config.boundaries)} reach trainer.train_steps={steps}: the '
          f'last decay would never happen; {advice}')
    if name.startswith('warmup.') and (config.warmup_steps or 0) > steps:
      raise ValueError(
          f'trainer.optimizer_config.{name}.warmup_steps='
          f'{config.warmup_steps} is beyond trainer.train_steps={steps}: '
          f'{advice}')
