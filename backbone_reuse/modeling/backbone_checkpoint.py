"""Restores a backbone, or a whole detector, from a checkpoint, or fails loudly.

`restore_detector` reads a detector's training checkpoint (the model under
`model/`, as Model Garden's trainer writes it): every model variable must be
matched, and every model variable of the checkpoint used (a checkpoint of
another architecture is refused, not partially read).

`restore_backbone` reads a classification checkpoint. Two layouts are accepted, found by reading the checkpoint's object graph:
  * the backbone at the root (`backbone/...`): a backbone-only checkpoint, and
    what Model Garden's trainer also writes beside the model;
  * the backbone nested under the classification model (`model/_backbone/...`),
    as `tf.train.Checkpoint(model=classification_model)` writes it.

Before restoring, every variable of the backbone is matched against the
checkpoint the way TensorFlow's object-based restore matches it (same edge
names from the root, same shape). Anything unmatched stops the run with the
names listed: a partially restored backbone is never used silently. The one
exception is residual adapters (modeling/adapters.py): new variables that no
classification checkpoint has, left at their initial values. A plain ViT's
position embedding of another grid size (a classifier trained at 224 px, a
detector at 1024) is resized from the checkpoint's, as Model Garden's ViT
interpolates it, the class token's slot kept (resized_position_embedding).
"""
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
from official.vision.modeling.backbones import vit
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2
import tf_keras

from backbone_reuse.modeling import adapters

# Edge paths from the checkpoint root to the backbone, tried in order.
BACKBONE_PATHS: Tuple[Tuple[str, ...], ...] = (
    ('backbone',),
    ('model', '_backbone'),
    ('model', 'backbone'),
)
_SHOWN = 20


class BackboneCheckpointError(ValueError):
  """The checkpoint cannot initialise every backbone variable."""


def resolve_path(path: str, flag: str = 'task.init_checkpoint') -> str:
  """The checkpoint prefix of `path`; BackboneCheckpointError naming `flag`
  if there is none.

  Accepted: a prefix (PATH.index exists); a directory whose `checkpoint`
  file names one (what training writes); or a directory as a published
  checkpoint tarball unpacks, without that file: its one prefix (of several,
  the highest step, e.g. ckpt-109800 over ckpt-500), looked for in the
  directory and, if it holds nothing else, in its single subdirectory.
  """
  accepted = ('accepted: a checkpoint prefix, or a directory holding one '
              '(with or without its `checkpoint` file)')
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
    prefix = _unpacked_prefix(path)
    if not prefix:
      raise BackboneCheckpointError(
          f'{flag}={path!r} is a directory without a checkpoint (no '
          f'*.index file in it or its single subdirectory); {accepted}.')
    logging.info('%s=%s: no `checkpoint` file; using %s.', flag, path,
                 prefix)
    return prefix
  if not tf.io.gfile.exists(path + '.index'):
    raise BackboneCheckpointError(
        f'{flag}={path!r}: no such checkpoint (no {path}.index); '
        f'{accepted}.')
  return path


def _step(prefix: str) -> int:
  tail = prefix.rsplit('-', 1)[-1]
  return int(tail) if tail.isdigit() else -1


def _unpacked_prefix(directory: str) -> str:
  """The highest-step checkpoint prefix in `directory` (or, if it holds only
  one subdirectory, in that); '' if none."""
  names = tf.io.gfile.listdir(directory)
  prefixes = [os.path.join(directory, n[:-len('.index')])
              for n in names if n.endswith('.index')]
  if prefixes:
    return max(prefixes, key=lambda p: (_step(p), p))
  subdirectories = [n.rstrip('/') for n in names
                    if tf.io.gfile.isdir(os.path.join(directory, n))]
  if len(subdirectories) == 1 and len(names) == 1:
    return _unpacked_prefix(os.path.join(directory, subdirectories[0]))
  return ''


def _object_graph(reader) -> trackable_object_graph_pb2.TrackableObjectGraph:
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
  return graph


def _child(graph, node_id: int, name: str):
  for child in graph.nodes[node_id].children:
    if child.local_name == name:
      return child.node_id
  return None


def _find_backbone(graph) -> Tuple[Tuple[str, ...], int]:
  for path in BACKBONE_PATHS:
    node_id = 0
    for name in path:
      node_id = _child(graph, node_id, name)
      if node_id is None:
        break
    if node_id is not None:
      return path, node_id
  return (), -1


def variables_by_path(root) -> Dict[int, Tuple[str, tf.Variable]]:
  """Every variable under `root`, keyed by id, with its first edge path."""
  found = {}
  queue = [((), root)]
  seen = {id(root)}
  while queue:
    path, obj = queue.pop(0)
    for name, child in tf.train.TrackableView(obj).children(obj).items():
      if id(child) in seen:
        continue
      seen.add(id(child))
      child_path = path + (name,)
      if isinstance(child, tf.Variable):
        found[id(child)] = ('/'.join(child_path), child)
      else:
        queue.append((child_path, child))
  return found


def _grid(length: int) -> Optional[Tuple[int, Tuple[int, int]]]:
  """(class-token slots, (rows, cols)) of a classifier's position embedding
  length: a square grid (classifiers train on square crops), or one
  class-token slot before it; None otherwise."""
  for slots in (0, 1):
    side = math.isqrt(length - slots)
    if side * side == length - slots and side > 0:
      return slots, (side, side)
  return None


def _resize_plan(saved: Sequence[int], shape: Sequence[int],
                 grid: Optional[Tuple[int, int]]):
  """((slots, (rows, cols)) of the checkpoint's, the same of the backbone's)
  position embeddings [1, N, C], where `grid` is the backbone's patch grid
  (its AddPositionEmbs knows it: an input need not be square), if one
  resizes to the other (same C, no class slot the checkpoint lacks); else
  None."""
  if (grid is None or len(shape) != 3 or len(saved) != 3
      or saved[2] != shape[2]):
    return None
  source = _grid(saved[1])
  target = (shape[1] - grid[0] * grid[1], tuple(grid))
  if source is None or target[0] not in (0, 1) or target[0] > source[0]:
    return None
  return source, target


def position_grid(layer: vit.AddPositionEmbs) -> Optional[Tuple[int, int]]:
  """The (rows, cols) of patches whose embeddings `layer`'s variable holds:
  its configured origin shape (pos_embed_shape), else the input's grid; None
  if it knows neither (then its embedding is not resized, only matched)."""
  grid = layer.posemb_origin_shape or layer.posemb_target_shape
  return tuple(grid) if grid else None


def resized_position_embedding(saved: np.ndarray, shape: Sequence[int],
                               grid: Optional[Tuple[int, int]]) -> Optional[np.ndarray]:
  """A ViT checkpoint's position embedding `saved` [1, N, C] for a backbone
  whose embedding has `shape` [1, M, C] over a `grid` of (rows, cols)
  patches (another input size, with or without a class token): the grid
  resized bilinearly, as Model Garden's AddPositionEmbs interpolates; the
  class token's slot (first) kept, or dropped when the backbone has none.
  None when not a grid, or C differs."""
  plan = _resize_plan(list(saved.shape), list(shape), grid)
  if plan is None:
    return None
  (slots, (rows, cols)), (target_slots, (target_rows, target_cols)) = plan
  resized = tf.reshape(saved[:, slots:], [1, rows, cols, -1])
  resized = tf.reshape(
      tf.image.resize(resized, [target_rows, target_cols]),
      [1, target_rows * target_cols, -1]).numpy()
  return np.concatenate([saved[:, :target_slots], resized], axis=1).astype(
      saved.dtype)


def _unmatched(graph, shapes, backbone_node: int, backbone, new_ids,
               matched_nodes=None, resizable=None, resized=None,
               matched=None) -> List[str]:
  """Backbone variables the checkpoint cannot restore, with the reason
  (variables whose id is in `new_ids` are new, e.g. adapters: skipped).
  The checkpoint nodes of the matched variables are added to
  `matched_nodes` when given; variables whose id is a key of `resizable`
  (ViT position embeddings: {id: their patch grid}) that differ from the
  checkpoint's only by grid size are added to `resized` as (variable,
  checkpoint key), not refused; the
  matched variables to `matched` (the same pairs) when given."""
  problems = []
  for key, (path, variable) in variables_by_path(backbone).items():
    if key in new_ids:
      continue
    node_id = backbone_node
    for name in path.split('/'):
      node_id = _child(graph, node_id, name) if node_id is not None else None
    label = f'{variable.name} ({path})'
    if node_id is None:
      problems.append(f'{label}: missing')
      continue
    keys = [a.checkpoint_key for a in graph.nodes[node_id].attributes
            if a.name == 'VARIABLE_VALUE']
    if not keys:
      problems.append(f'{label}: not a variable in the checkpoint')
    elif shapes[keys[0]] != variable.shape.as_list():
      if key in (resizable or {}) and _resize_plan(
          shapes[keys[0]], variable.shape.as_list(),
          resizable[key]) is not None:
        resized.append((variable, keys[0]))
        continue
      problems.append(f'{label}: shape {variable.shape.as_list()} vs '
                      f'{shapes[keys[0]]} in the checkpoint')
    else:
      if matched_nodes is not None:
        matched_nodes.add(node_id)
      if matched is not None:
        matched.append((variable, keys[0]))
  return sorted(problems)


def _variable_nodes(graph, root_node: int) -> Dict[int, str]:
  """Every variable node under `root_node`: {node id: first edge path}."""
  found = {}
  queue = [(root_node, '')]
  seen = {root_node}
  while queue:
    node_id, path = queue.pop(0)
    for child in graph.nodes[node_id].children:
      if child.node_id in seen:
        continue
      seen.add(child.node_id)
      child_path = f'{path}/{child.local_name}' if path else child.local_name
      if any(a.name == 'VARIABLE_VALUE'
             for a in graph.nodes[child.node_id].attributes):
        found[child.node_id] = child_path
      else:
        queue.append((child.node_id, child_path))
  return found


def _nest(path: Sequence[str], backbone) -> tf.train.Checkpoint:
  obj = backbone
  for name in reversed(path):
    obj = tf.train.Checkpoint(**{name: obj})
  return obj


def restore_backbone(backbone: tf_keras.Model, checkpoint_path: str) -> str:
  """Restores every backbone variable from `checkpoint_path`.

  Args:
    backbone: the built backbone model of a detector (or classifier).
    checkpoint_path: a checkpoint prefix, or a directory (latest is used).

  Returns:
    The layout found, e.g. 'backbone' or 'model/_backbone'.

  Raises:
    BackboneCheckpointError: no backbone in the checkpoint, or some backbone
      variable has no counterpart of the same shape (first 20 listed + count).
  """
  path = resolve_path(checkpoint_path)
  reader = tf.train.load_checkpoint(path)
  graph = _object_graph(reader)
  edges, node_id = _find_backbone(graph)
  if node_id < 0:
    roots = [c.local_name for c in graph.nodes[0].children]
    raise BackboneCheckpointError(
        f'task.init_checkpoint={path!r} holds no backbone (root objects: '
        f'{roots}); accepted layouts: '
        f'{", ".join("/".join(p) for p in BACKBONE_PATHS)}.')
  new = adapters.adapter_variables(backbone)
  grids = {id(m.pos_embedding): position_grid(m) for m in backbone.submodules
           if isinstance(m, vit.AddPositionEmbs)}
  resized, matched = [], []
  problems = _unmatched(graph, reader.get_variable_to_shape_map(), node_id,
                        backbone, {id(v) for v in new},
                        resizable=grids, resized=resized,
                        matched=matched)
  layout = '/'.join(edges)
  if problems:
    raise BackboneCheckpointError(
        f'task.init_checkpoint={path!r} (layout {layout}) cannot initialise '
        f'{len(problems)} backbone variable(s); is it the same backbone '
        f'architecture? First {min(len(problems), _SHOWN)}:\n  ' +
        '\n  '.join(problems[:_SHOWN]))
  if not resized:
    _nest(edges, backbone).read(path).expect_partial()
  else:
    # The object-based read would refuse a resized position embedding's
    # shape: each variable is assigned from its matched checkpoint key.
    for variable, key in matched:
      variable.assign(reader.get_tensor(key))
    for variable, key in resized:
      saved = reader.get_tensor(key)
      variable.assign(resized_position_embedding(
          saved, variable.shape.as_list(), grids[id(variable)]))
      logging.warning('%s: the checkpoint\'s position embedding %s '
                      'interpolated to %s.', variable.name,
                      list(saved.shape), variable.shape.as_list())
  logging.info('Restored all %d backbone variables from %s (layout %s); '
               '%d adapter variables are new.',
               len(backbone.weights) - len(new), path, layout, len(new))
  return layout


def restore_detector(model: tf_keras.Model, checkpoint_path: str,
                     flag: str = '--checkpoint') -> str:
  """Restores every variable of `model` from a detector training checkpoint.

  Args:
    model: the built detector (e.g. from our task's `build_model`).
    checkpoint_path: a checkpoint prefix, or a model dir (latest is used).
    flag: how the user gave `checkpoint_path`, for error messages.

  Returns:
    The checkpoint prefix read.

  Raises:
    BackboneCheckpointError: no model in the checkpoint, a model variable
      without a counterpart of the same shape, or checkpoint model variables
      this model does not have (another architecture); first 20 of each
      listed with the count.
  """
  path = resolve_path(checkpoint_path, flag)
  reader = tf.train.load_checkpoint(path)
  graph = _object_graph(reader)
  model_node = _child(graph, 0, 'model')
  if model_node is None:
    roots = [c.local_name for c in graph.nodes[0].children]
    raise BackboneCheckpointError(
        f'{flag}={path!r} holds no detector (root objects: {roots}); '
        'accepted: a checkpoint written by training, with the model under '
        '"model".')
  matched = set()
  problems = _unmatched(graph, reader.get_variable_to_shape_map(),
                        model_node, model, set(), matched)
  unused = sorted(f'{p}: in the checkpoint, not in the model'
                  for n, p in _variable_nodes(graph, model_node).items()
                  if n not in matched)
  problems += unused
  if problems:
    raise BackboneCheckpointError(
        f'{flag}={path!r} does not match the model: {len(problems)} '
        'variable(s) differ; is it the same architecture and config?\n  ' +
        '\n  '.join(problems[:_SHOWN]))
  # expect_partial: the optimizer and step beside the model are not needed.
  tf.train.Checkpoint(model=model).read(path).expect_partial()
  logging.info('Restored all %d model variables from %s.',
               len(model.weights), path)
  return path
