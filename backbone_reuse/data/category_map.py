"""Dataset category ids <-> the detector's contiguous class indices.

Class index 0 is background; the sorted category ids take 1..K. LVIS v1's ids
are already 1..1203 (the map is the identity there) and so are the Shapes
world's. COCO's paper rows keep Model Garden's convention (labels are COCO's
ids, below 91 classes); a user's set with other ids gets its map fixed when
the config is resolved (`task.class_category_ids`), applied where labels are
decoded and undone where predictions leave.
"""
import collections
import json
from typing import Dict, Iterable, List, Sequence, Tuple

import tensorflow as tf


class CategoryMap:
  """A bijection between category ids and class indices 1..K."""

  def __init__(self, category_ids: Iterable[int]):
    ids = sorted(int(i) for i in category_ids)
    if len(set(ids)) != len(ids):
      raise ValueError(f'Category ids repeat: {ids}; each must be unique.')
    self._ids: List[int] = ids
    self._index: Dict[int, int] = {c: i + 1 for i, c in enumerate(ids)}

  @property
  def num_classes(self) -> int:
    """Classes including background (the detector's `num_classes`)."""
    return len(self._ids) + 1

  @property
  def category_ids(self) -> List[int]:
    return list(self._ids)

  def class_index(self, category_id: int) -> int:
    try:
      return self._index[int(category_id)]
    except KeyError:
      raise ValueError(f'category_id={category_id} is not a category of '
                       'this dataset.') from None

  def category_id(self, class_index: int) -> int:
    if not 1 <= class_index <= len(self._ids):
      raise ValueError(f'class index {class_index} is outside 1..'
                       f'{len(self._ids)} (0 is background).')
    return self._ids[class_index - 1]


def training_counts(dataset: Dict) -> Dict[int, Dict[str, int]]:
  """Per category id: {'annotations': objects, 'images': images with one}.

  Counted from a loaded COCO/LVIS dict's annotations (exact for any file;
  LVIS also stores them as `instance_count` / `image_count`).
  """
  annotations = collections.Counter()
  images = collections.defaultdict(set)
  for annotation in dataset['annotations']:
    annotations[annotation['category_id']] += 1
    images[annotation['category_id']].add(annotation['image_id'])
  return {c['id']: {'annotations': annotations[c['id']],
                    'images': len(images[c['id']])}
          for c in dataset['categories']}


def class_training_counts(
    annotation_file: str) -> Tuple[List[Dict[str, int]], int]:
  """`training_counts` of a COCO/LVIS JSON in class-index order (1..K).

  Returns:
    ([{'annotations', 'images'} for class indices 1..K], number of images).
  """
  with tf.io.gfile.GFile(annotation_file) as f:
    dataset = json.load(f)
  counts = training_counts(dataset)
  return ([counts[c] for c in CategoryMap(counts).category_ids],
          len(dataset['images']))


def class_category_ids(categories: List[Dict]) -> List[int]:
  """What `task.class_category_ids` holds for a dataset's categories.

  [] when the ids are already 1..K (COCO-style labels are then the class
  indices, as LVIS v1 and the Shapes world have them); else the sorted ids,
  class index i being the i-th (ids with gaps, ids in the thousands, an id 0
  -- which would collide with background -- all map like any other).
  """
  ids = sorted(int(c['id']) for c in categories)
  if len(set(ids)) != len(ids):
    raise ValueError(f'category ids repeat: {ids}; each must be unique.')
  return [] if ids == list(range(1, len(ids) + 1)) else ids


def label_map(categories: List[Dict], num_classes: int,
              mapped_ids: Sequence[int] = (),
              records_carry_indices: bool = False) -> List[Dict]:
  """The detector's class indices 1..num_classes-1 as dataset categories.

  With `mapped_ids` (a task's `class_category_ids`) class index i is
  mapped_ids[i - 1]. Without it the labels are what the records carry: Model
  Garden's COCO converter writes category ids (COCO's, with gaps, below its
  91 classes); our LVIS converter writes `CategoryMap` indices
  (`records_carry_indices`: the ids are then compacted whatever they are).

  Args:
    categories: the annotation file's category dicts (`id`, `name`).
    num_classes: the detector's `task.model.num_classes` (with background).
    mapped_ids: the task's `class_category_ids`, or empty.
    records_carry_indices: the records' labels are class indices already
      (an LVIS task's), not category ids.

  Returns:
    [{'class_index', 'category_id', 'name'}] for every category.

  Raises:
    ValueError: the categories cannot be the detector's classes.
  """
  ids = [int(c['id']) for c in categories]
  names = {int(c['id']): c['name'] for c in categories}
  if mapped_ids:
    if sorted(ids) != sorted(int(i) for i in mapped_ids):
      raise ValueError(
          f'its {len(ids)} categories (ids {_span(ids)}) are not the '
          f'{len(mapped_ids)} the run maps to class indices '
          f'(task.class_category_ids: ids {_span(mapped_ids)}); accepted: '
          'the annotation file the map was made from, or '
          'task.class_category_ids=[] with task.model.num_classes=0 to make '
          'the map from this one.')
    compact = CategoryMap(mapped_ids)
    index = {i: compact.class_index(i) for i in ids}
  elif (ids and max(ids) < num_classes and min(ids) >= 1
        and not records_carry_indices):
    index = {i: i for i in ids}
  elif records_carry_indices and len(ids) + 1 <= num_classes:
    compact = CategoryMap(ids)
    index = {i: compact.class_index(i) for i in ids}
  else:
    raise ValueError(
        f'{len(ids)} categories (ids {_span(ids)}) cannot be the classes of a '
        f'detector with num_classes={num_classes}; accepted: '
        + ('num_classes >= categories + 1 (the records carry class indices).'
           if records_carry_indices else
           'ids 1..num_classes-1 (as the records carry them), or '
           'task.model.num_classes=0 to map the ids to class indices.'))
  return [{'class_index': index[i], 'category_id': i, 'name': names[i]}
          for i in sorted(ids)]


def _span(ids: Sequence[int]) -> str:
  """'a..b' of sorted ids (a long list is not printed whole)."""
  ids = sorted(int(i) for i in ids)
  return f'{ids[0]}..{ids[-1]}' if ids else 'none'


def load_categories(annotation_file: str) -> List[Dict]:
  """The `categories` of a COCO/LVIS JSON; ValueError if it has none or
  cannot be read."""
  try:
    with tf.io.gfile.GFile(annotation_file) as f:
      return json.load(f)['categories']
  except tf.errors.OpError as error:
    raise ValueError(error.message.strip().splitlines()[0]) from None
  except (json.JSONDecodeError, KeyError, TypeError) as error:
    raise ValueError(f'{annotation_file} is not a COCO/LVIS JSON with '
                     f'categories ({type(error).__name__}: {error})') from None
