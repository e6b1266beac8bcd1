"""The dev split: scenes of the grid's world drawn with another seed.

Settings are chosen on it (the adapters study's variant, the schedule
pilot's long schedule), so the validation split the report scores is never
read to choose them. It has the grid's class weights and frequency groups,
SEED instead of the world's, and image ids from FIRST_ID on (disjoint from
the validation split's).
"""
import dataclasses
import json
import os
from typing import Dict, Optional

from backbone_reuse.data import coco_conversion
from backbone_reuse.shapes import runs
from backbone_reuse.shapes import stages
from backbone_reuse.shapes import world

NAME = 'dev'
SEED = 1000  # The grid's world uses seeds 0-3 and 100.
FIRST_ID = 1_000_001


class DevSplit:
  """The split under `directory`, for the world whose training annotations
  are `train_annotations` (their frequency groups are kept)."""

  def __init__(self, directory: str, images: int, world_seed: int,
               train_annotations: str):
    self.directory = directory
    self.images = images
    self.world_seed = world_seed
    self.train_annotations = train_annotations
    # What the split depends on; part of the key of every run scored on it.
    self.identity = {'seed': SEED, 'first_id': FIRST_ID, 'images': images}

  def annotations(self) -> str:
    return os.path.join(self.directory, NAME, 'annotations.json')

  def input_path(self) -> str:
    return os.path.join(self.directory, f'{NAME}-*')

  def make(self) -> Dict:
    with open(self.train_annotations) as f:
      frequencies = {c['id']: c['frequency']
                     for c in json.load(f)['categories']}
    split_dir = os.path.join(self.directory, NAME)
    annotation_file, image_dir, _ = world.write_detection_split(
        split_dir, self.images, SEED, world.long_tail_weights(self.world_seed),
        frequencies, first_image_id=FIRST_ID)
    coco_conversion.convert(annotation_file, image_dir, split_dir, num_shards=1)
    return {'identity': self.identity}

  def verify(self, marker: Dict) -> Optional[str]:
    if marker.get('identity') != self.identity:
      return f'made as {marker.get("identity")}, now {self.identity}'
    runs.quiet_coco(self.annotations())  # Raises on a broken JSON.
    return None

  def ensure(self) -> None:
    """Draws the split unless a verified one is on disk."""
    stages.run_stage(self.directory, 'dev split',
                     'draw the dev split (another seed)', self.make,
                     self.verify)

  def scored_on(self, training: runs.Training) -> runs.Training:
    """`training` with its validation data and annotations the split's."""
    overrides = json.loads(json.dumps(training.overrides))
    task = overrides.setdefault('task', {})
    task['annotation_file'] = self.annotations()
    task.setdefault('validation_data', {})['input_path'] = self.input_path()
    return dataclasses.replace(training, overrides=overrides)
