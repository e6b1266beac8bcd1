r"""Runs a trained detector on image files: detections.json and drawn PNGs.

  python -m backbone_reuse.predict --model=EXPORT_DIR|MODEL_DIR \
    --images=GLOB_OR_DIR --output_dir=DIR [--score_threshold=0.5] \
    [--annotation_file=GT.json] [--experiment=NAME]

--model is a SavedModel written by `backbone_reuse.export` (its label_map.json
names the classes) or a training model dir (params.yaml + checkpoints; built
by our task and restored loudly; --experiment is found from params.yaml when
not given). Images are JPEG/PNG (anything TensorFlow decodes), any size.

OUTPUT_DIR then holds:
  detections.json  COCO results (original-image pixels, RLE masks, category
                   ids of the training annotation file): every detection,
                   so that `backbone_reuse.tools.evaluate` scores it;
  images.json      the image ids: from --annotation_file by file name when
                   given, else 1..N in sorted file order;
  visualizations/  one PNG per image, detections scoring >= --score_threshold
                   drawn with class names (ground truth beside them when
                   --annotation_file is given).
A missing or mismatched model fails in one `error:` line (exit 2) before any
image is read. A file that cannot be decoded is named and skipped; the others
are still predicted, and the run exits with status 1 listing the skipped.
"""
import glob
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top
from typing import Dict, List, Optional, Tuple

from absl import app
from absl import flags
from absl import logging
import numpy as np
from pycocotools import coco
import tensorflow as tf
import tqdm

from backbone_reuse import errors
from backbone_reuse import serving
from backbone_reuse.analysis import visualize
from backbone_reuse.evaluation import files as evaluation_files
from backbone_reuse.evaluation import predictions

BadInput = errors.BadInput
SKIPPED_EXIT_CODE = 1
# Tried in order when a model dir's experiment is not given: params.yaml
# loads strictly into exactly one of these config types.
MODEL_DIR_EXPERIMENTS = ('backbone_reuse_maskrcnn_coco',
                         'backbone_reuse_retinanet_coco')
_IMAGE_SPEC = tf.TensorSpec([1, None, None, 3], tf.uint8)


class Detector:
  """A trained detector called on one uint8 image at a time."""

  def __init__(self, function, labels: Dict, keep_alive=None):
    self._function = function
    self._keep_alive = keep_alive  # Owner of `function`'s variables.
    self.labels = labels
    self.category_ids = {c['class_index']: c['category_id']
                         for c in labels['classes']}
    self.names = {c['category_id']: c['name'] for c in labels['classes']}

  def __call__(self, image: tf.Tensor) -> Dict[str, np.ndarray]:
    """[height, width, 3] uint8 -> the detector's outputs, batch of one."""
    outputs = self._function(tf.expand_dims(image, 0))
    return {k: v.numpy() for k, v in outputs.items()}


def _from_export(path: str) -> Detector:
  loaded = tf.saved_model.load(path)
  function = loaded.signatures.get(serving.IMAGE_TENSOR_SIGNATURE)
  if function is None:
    function = loaded.signatures.get(
        tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY)
    specs = function.structured_input_signature[1] if function else {}
    if (len(specs) != 1 or next(iter(specs.values())).dtype != tf.uint8):
      raise BadInput(f'--model={path!r} has no uint8 image signature '
                     f'(signatures: {sorted(loaded.signatures)}); export it '
                     'with python -m backbone_reuse.export.')
  label_file = os.path.join(path, serving.LABEL_MAP_FILENAME)
  if not tf.io.gfile.exists(label_file):
    raise BadInput(f'--model={path!r} has no {serving.LABEL_MAP_FILENAME}; '
                   'export it with python -m backbone_reuse.export.')
  with tf.io.gfile.GFile(label_file) as f:
    labels = json.load(f)
  return Detector(function, labels, loaded)


def _from_model_dir(path: str, experiment: str,
                    annotation_file: str) -> Detector:
  candidates = [experiment] if experiment else MODEL_DIR_EXPERIMENTS
  errors = []
  for name in candidates:
    try:
      params = serving.resolve_params(name, [], '', path)
      break
    except BadInput as error:
      errors.append(str(error))
  else:
    raise BadInput(f'--model={path!r}: its params.yaml fits none of '
                   f'{", ".join(candidates)} ({errors[0]}); pass '
                   '--experiment.')
  labels = serving.class_labels(params, annotation_file)
  module = serving.build_module(params, path)
  function = module.inference_from_image_tensors.get_concrete_function(
      _IMAGE_SPEC)
  return Detector(function, labels, module)


def load_detector(path: str, experiment: str = '',
                  annotation_file: str = '') -> Detector:
  """An export dir or a training model dir as a Detector; BadInput if it is
  neither, or its checkpoint does not match its config."""
  if not path or not tf.io.gfile.isdir(path):
    raise BadInput(f'--model={path!r}: no such directory; accepted: an '
                   'export dir (saved_model.pb) or a training model dir '
                   '(params.yaml + checkpoint).')
  if tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
    return _from_export(path)
  if (tf.io.gfile.exists(os.path.join(path, serving.PARAMS_FILENAME))
      and tf.train.latest_checkpoint(path)):
    return _from_model_dir(path, experiment, annotation_file)
  raise BadInput(f'--model={path!r} holds neither saved_model.pb nor '
                 'params.yaml with a checkpoint; accepted: an export dir or '
                 'a training model dir.')


def list_images(pattern: str) -> List[str]:
  """The files of a directory, or of a glob, sorted; BadInput if none."""
  if os.path.isdir(pattern):
    files = [os.path.join(pattern, n) for n in os.listdir(pattern)]
  else:
    files = glob.glob(pattern)
  files = sorted(f for f in files if os.path.isfile(f))
  if not files:
    raise BadInput(f'--images={pattern!r} matches no file; accepted: a '
                   'directory or a glob of image files.')
  names = [os.path.basename(f) for f in files]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise BadInput(f'--images={pattern!r}: file names repeat across folders '
                   f'({repeated[:5]}); ids and drawings go by file name.')
  return files


def _ground_truth(annotation_file: str, labels: Dict) -> coco.COCO:
  """The ground truth, checked as the evaluate command checks it, and holding
  every category of the model's classes."""
  dataset = evaluation_files.load_json(annotation_file, 'annotation_file')
  evaluation_files.check_ground_truth(dataset, 'coco', annotation_file)
  known = {c['id'] for c in dataset['categories']}
  missing = sorted({c['category_id'] for c in labels['classes']} - known)
  if missing:
    raise BadInput(f'--annotation_file={annotation_file!r} lacks categories '
                   f'{missing[:10]} of the model\'s classes; is it the '
                   'dataset the model was trained on?')
  ground_truth = coco.COCO()
  ground_truth.dataset = dataset
  ground_truth.createIndex()
  return ground_truth


def _ground_truth_detections(ground_truth: coco.COCO,
                             image_id: int) -> List[Dict]:
  """The image's annotations as results of score 1 (RLE masks)."""
  found = []
  for annotation in ground_truth.loadAnns(
      ground_truth.getAnnIds(imgIds=[image_id])):
    item = {'bbox': annotation['bbox'], 'score': 1.0,
            'category_id': annotation['category_id']}
    if annotation.get('segmentation'):
      item['segmentation'] = ground_truth.annToRLE(annotation)
    found.append(item)
  return found


def _decode(path: str) -> Tuple[Optional[tf.Tensor], str]:
  """(image, '') or (None, why it cannot be read)."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
    return tf.io.decode_image(data, channels=3, expand_animations=False), ''
  except (OSError, tf.errors.InvalidArgumentError) as error:
    message = getattr(error, 'message', str(error))
    return None, message.strip().splitlines()[0] if message.strip() else (
        type(error).__name__)


def predict(detector: Detector, files: List[str], output_dir: str,
            score_threshold: float = 0.5,
            ground_truth: Optional[coco.COCO] = None) -> Dict:
  """Predicts every file; writes the outputs (see module docstring).

  Returns:
    {'images', 'detections', 'seconds', 'images_per_second', 'skipped':
     [[file, reason]]}.
  """
  drawings = os.path.join(output_dir, 'visualizations')
  os.makedirs(drawings, exist_ok=True)
  ids = ({i['file_name'].split('/')[-1]: i['id']
          for i in ground_truth.dataset['images']} if ground_truth else {})
  detections, images, skipped = [], [], []
  seconds = 0.0
  for number, path in enumerate(tqdm.tqdm(files, desc='predict',
                                          unit='img'), start=1):
    name = os.path.basename(path)
    if ground_truth and name not in ids:
      skipped.append([path, 'not an image of --annotation_file'])
      continue
    image, reason = _decode(path)
    if image is None:
      skipped.append([path, reason])
      continue
    image_id = ids[name] if ground_truth else number
    start = time.perf_counter()
    outputs = detector(image)
    seconds += time.perf_counter() - start
    mine = []
    for result in predictions.coco_results(
        np.array([image_id]), outputs['image_info'],
        {k: outputs[k] for k in predictions.OUTPUT_KEYS if k in outputs}):
      category_id = detector.category_ids.get(result['category_id'])
      if category_id is not None:  # Else a class index with no category.
        mine.append(dict(result, category_id=category_id))
    detections.extend(mine)
    height, width = (int(v) for v in image.shape[:2])
    images.append({'id': image_id, 'file_name': name, 'path': path,
                   'height': height, 'width': width})
    scale = max(1, 384 // max(height, width))
    tiles = [visualize.draw(image.numpy(), mine, detector.names,
                            score_threshold, scale, title='prediction')]
    if ground_truth:
      tiles.insert(0, visualize.draw(
          image.numpy(), _ground_truth_detections(ground_truth, image_id),
          detector.names, 0.0, scale, title='ground truth',
          show_scores=False))
    visualize.row(tiles).save(os.path.join(drawings, f'{name}.png'))
  for filename, content in (('detections.json', detections),
                            ('images.json', images)):
    with open(os.path.join(output_dir, filename), 'w') as f:
      json.dump(content, f)
  return {'images': len(images), 'detections': len(detections),
          'seconds': round(seconds, 3),
          'images_per_second': round(len(images) / seconds, 2)
                               if seconds else 0.0,
          'skipped': skipped}


def main(_):
  values = flags.FLAGS
  try:
    if not 0.0 <= values.score_threshold <= 1.0:
      raise BadInput(f'--score_threshold={values.score_threshold}; accepted: '
                     'a number in [0, 1].')
    detector = load_detector(values.model, values.experiment,
                             values.annotation_file)
    files = list_images(values.images)
    ground_truth = (_ground_truth(values.annotation_file, detector.labels)
                    if values.annotation_file else None)
  except BadInput as error:
    errors.report_bad_input(error)
  summary = predict(detector, files, values.output_dir,
                    values.score_threshold, ground_truth)
  print(json.dumps({'output_dir': values.output_dir, **summary}))
  if summary['skipped']:
    print(f'{len(summary["skipped"])} file(s) skipped:', file=sys.stderr)
    for path, reason in summary['skipped']:
      print(f'  {path}: {reason}', file=sys.stderr)
    raise SystemExit(SKIPPED_EXIT_CODE)


if __name__ == '__main__':
  # Defined here, not at import, so importing this module defines no flags.
  flags.DEFINE_string('model', None, 'An export dir or a training model dir.')
  flags.DEFINE_string('images', None, 'A directory or a glob of images.')
  flags.DEFINE_string('output_dir', None, 'Where the outputs go.')
  flags.DEFINE_float('score_threshold', 0.5,
                     'Drawn detections score at least this (detections.json '
                     'keeps every detection).')
  flags.DEFINE_string('annotation_file', '',
                      'Ground truth: image ids by file name, drawn beside.')
  flags.DEFINE_string('experiment', '',
                      'The experiment of a training model dir (else found).')
  flags.mark_flags_as_required(['model', 'images', 'output_dir'])
  logging.set_verbosity(logging.WARNING)
  app.run(main)
