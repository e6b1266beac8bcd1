r"""A user's own COCO set with category ids in the thousands vs small ids (issue 38).

  python experiments/own_data_ids.py [--work_dir=/tmp/own_data_ids] \
      [--steps=200] [--output=experiments/own_data/ids.md]

For each id set -- 7 / 23 / 61, and 1001 / 2500 / 3999 with 5000 a category
without annotations -- writes a COCO set (48 training and 16 validation
images of flat-coloured boxes, one object each), then runs the README's
own-data commands one after another: convert (each split) -> train
(configs/smoke/rcnn_tiny.yaml, num_classes 0, --mode=train_and_eval,
--steps steps) -> export -> predict -> tools.evaluate. Each command's wall
time and peak resident memory (its process's maximum RSS, from wait4) are
written to a markdown table, with what each output says about ids: the
resolved num_classes and class_category_ids, label_map.json's
(class index, id, name) triples, and the category ids of predict's
detections. Before issue 38 the large ids resolved to 5001 classes and the
evaluation graph had not been built after 10 minutes.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from absl import app
from absl import flags
from official.modeling.hyperparams import params_dict
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
_WORK_DIR = flags.DEFINE_string('work_dir', '/tmp/own_data_ids',
                                'Data and runs.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Training steps.')
_OUTPUT = flags.DEFINE_string(
    'output', str(REPO / 'experiments' / 'own_data' / 'ids.md'),
    'Markdown report to write.')

ID_SETS = {
    'small ids': [(7, 'kettle'), (23, 'mug'), (61, 'teapot')],
    'ids in the thousands': [(1001, 'kettle'), (2500, 'mug'),
                             (3999, 'teapot'), (5000, 'urn')],
}
_ANNOTATED = 3  # The first three categories have objects; 5000 has none.
_SPLITS = {'train': 48, 'val': 16}
_EXPERIMENT = 'backbone_reuse_fasterrcnn_coco'


def write_split(directory: str, categories, count: int, first_id: int):
  """A COCO instances file and its PNGs: image i holds one box of the
  (i mod 3)-th category, drawn in that category's colour."""
  image_dir = os.path.join(directory, 'images')
  os.makedirs(image_dir, exist_ok=True)
  images, annotations = [], []
  for index in range(count):
    label = index % _ANNOTATED
    pixels = [[(20, 20, 20)] * 64 for _ in range(64)]
    x, y = 6 + 3 * (index % 7), 8 + 2 * (index % 5)
    for row in range(y, y + 24):
      for column in range(x, x + 20 + 6 * label):
        pixels[row][column] = (80 * (label + 1), 200 - 60 * label, 90)
    name = f'{first_id + index}.png'
    image = Image.new('RGB', (64, 64))
    image.putdata([value for line in pixels for value in line])
    image.save(os.path.join(image_dir, name))
    images.append({'id': first_id + index, 'file_name': name, 'height': 64,
                   'width': 64})
    annotations.append({
        'id': first_id + index, 'image_id': first_id + index,
        'category_id': categories[label][0],
        'bbox': [x, y, 20 + 6 * label, 24], 'area': (20 + 6 * label) * 24,
        'iscrowd': 0})
  annotation_file = os.path.join(directory, 'instances.json')
  with open(annotation_file, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': [{'id': i, 'name': n} for i, n in categories]},
              f)
  return annotation_file, image_dir


def timed(log: List[Dict], stage: str, *args: str) -> str:
  """Runs `python -m args...`; appends its wall seconds and its process's
  peak RSS (wait4's rusage of that one child)."""
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, '-m', *args], cwd=REPO,
                               stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  if os.waitstatus_to_exitcode(status):
    raise RuntimeError(f'{stage} failed:\n{stderr[-3000:]}')
  peak_mb = round(usage.ru_maxrss / 1024)  # Linux: kilobytes.
  log.append({'stage': stage, 'seconds': round(seconds, 1),
              'peak_rss_mb': peak_mb})
  print(f'  {stage}: {seconds:.1f} s, peak RSS {peak_mb} MB', flush=True)
  return stdout


def run_set(root: str, categories) -> Dict:
  log = []
  files = {}
  for split, count in _SPLITS.items():
    directory = os.path.join(root, split)
    files[split] = write_split(directory, categories, count,
                               first_id=100 if split == 'train' else 900)
    timed(log, f'convert {split}', 'backbone_reuse.data.coco_tfrecord',
          f'--annotation_file={files[split][0]}',
          f'--image_dir={files[split][1]}',
          f'--output_prefix={os.path.join(root, "records", split)}')
  model_dir = os.path.join(root, 'run')
  timed(log, f'train {_STEPS.value} steps + evaluate', 'backbone_reuse.train',
        f'--experiment={_EXPERIMENT}',
        '--config_file=configs/smoke/rcnn_tiny.yaml',
        '--params_override=' + ','.join([
            'task.model.num_classes=0',
            f'task.annotation_file={files["val"][0]}',
            f'task.train_data.input_path={root}/records/train-*',
            f'task.validation_data.input_path={root}/records/val-*',
            f'trainer.train_steps={_STEPS.value}']),
        '--mode=train_and_eval', f'--model_dir={model_dir}')
  export_dir = os.path.join(root, 'export')
  timed(log, 'export', 'backbone_reuse.export', f'--experiment={_EXPERIMENT}',
        f'--checkpoint={model_dir}', f'--export_dir={export_dir}')
  predicted = os.path.join(root, 'predicted')
  timed(log, 'predict', 'backbone_reuse.predict', f'--model={export_dir}',
        f'--images={files["val"][1]}', f'--output_dir={predicted}',
        '--score_threshold=0.05', f'--annotation_file={files["val"][0]}')
  scored = json.loads(timed(
      log, 'tools.evaluate', 'backbone_reuse.tools.evaluate',
      f'--annotation_file={files["val"][0]}',
      f'--detections_file={predicted}/detections.json'))
  params = params_dict.read_yaml_to_params_dict(
      os.path.join(model_dir, 'params.yaml')).as_dict()['task']
  with open(os.path.join(export_dir, 'label_map.json')) as f:
    label_map = json.load(f)
  with open(os.path.join(predicted, 'detections.json')) as f:
    detections = json.load(f)
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    metrics = json.load(f)['metrics']
  return {
      'stages': log,
      'num_classes': params['model']['num_classes'],
      'class_category_ids': list(params['class_category_ids']),
      'label_map': [(c['class_index'], c['category_id'], c['name'])
                    for c in label_map['classes']],
      'detection_category_ids': sorted({d['category_id']
                                        for d in detections}),
      'training_eval_ap': metrics.get('AP'),
      'tools_evaluate_ap': scored['AP'],
      'per_class_ap': scored['per_class'],
  }


def report(results: Dict[str, Dict]) -> str:
  lines = ['# Own data: category ids in the thousands vs small ids', '',
           'Written by `python experiments/own_data_ids.py '
           f'--steps={_STEPS.value}` (2 cores, one command after another, '
           'beside a background training run; peak RSS is each '
           "command's own, from wait4). Before issue 38 the ids in the "
           'thousands resolved to 5001 classes and the evaluation graph was '
           'not built after 10 minutes (5.8 GB).', '']
  names = list(results)
  lines += ['| stage | ' + ' | '.join(f'{n}: s / peak MB' for n in names)
            + ' |', '|---|' + '---|' * len(names)]
  for row in range(len(results[names[0]]['stages'])):
    cells = [f"{results[n]['stages'][row]['seconds']} / "
             f"{results[n]['stages'][row]['peak_rss_mb']}" for n in names]
    lines.append(f"| {results[names[0]]['stages'][row]['stage']} | "
                 + ' | '.join(cells) + ' |')
  lines.append('')
  for name, result in results.items():
    lines += [f'## {name}', '',
              f"- resolved `num_classes`: {result['num_classes']}; "
              f"`class_category_ids`: {result['class_category_ids']}",
              f"- label_map.json (class index, id, name): "
              f"{result['label_map']}",
              f"- category ids in predict's detections.json: "
              f"{result['detection_category_ids']}",
              f"- box AP: training's evaluation "
              f"{result['training_eval_ap']:.4f}, tools.evaluate on predict's detections "
              f"{result['tools_evaluate_ap']:.4f}; per class "
              f"{ {k: round(v, 4) for k, v in result['per_class_ap'].items()} }",
              '']
  return '\n'.join(lines)


def main(_):
  results = {}
  for name, categories in ID_SETS.items():
    print(f'{name}: {[i for i, _ in categories]}', flush=True)
    results[name] = run_set(
        os.path.join(_WORK_DIR.value, name.replace(' ', '_')), categories)
  os.makedirs(os.path.dirname(_OUTPUT.value), exist_ok=True)
  with open(_OUTPUT.value, 'w') as f:
    f.write(report(results))
  with open(os.path.splitext(_OUTPUT.value)[0] + '.json', 'w') as f:
    json.dump(results, f, indent=1)
  print(f'Wrote {_OUTPUT.value}')


if __name__ == '__main__':
  app.run(main)
