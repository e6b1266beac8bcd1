"""Per-class AP stratified by training annotations, frequency and size.

The data behind the paper's Tables 5/6 and Figures 4/5, for COCO, LVIS and
the Shapes world alike: `stratify` joins an evaluation's per-class AP (and
per-class AP by object size) with each class's training annotations and
frequency group; `plot_per_class` draws AP against training annotations
with Gaussian-kernel smoothing, as Figures 4/5 do.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from backbone_reuse.data import category_map
from backbone_reuse.evaluation import frequency

AREAS = ('small', 'medium', 'large')
GROUPS = frequency.GROUPS
# Smoothing width in log10(training annotations): the paper smooths LVIS
# (1 to ~50,000 annotations per class) with sigma = 1000 annotations; a
# log-space width works for any range, including the Shapes world's ~1-1,000.
LOG_SIGMA = 0.3


def _mean(values: List[float]) -> float:
  values = [v for v in values if v > -1]
  return float(np.mean(values)) if values else -1.0


def stratify(metrics: Dict, ground_truth: Dict,
             training_set: Optional[Dict] = None) -> Dict:
  """Per-class records and their means by frequency group and object size.

  Args:
    metrics: an evaluation's output (coco_metrics or lvis_metrics):
      'per_class' {name: AP} and 'per_class_by_area'.
    ground_truth: the evaluated split's COCO/LVIS dict (category names,
      `frequency` if any).
    training_set: the training split's dict, for annotation counts (LVIS
      categories' `instance_count` is used when absent).

  Returns:
    {'classes': [{'id', 'name', 'frequency', 'train_annotations',
                  'train_images', 'AP', 'APs', 'APm', 'APl'}, ...] sorted by
                 training annotations,
     'by_frequency': {'r'|'c'|'f': {'AP', 'APs', 'APm', 'APl', 'classes'}}}
    (means over classes whose AP is defined; -1 when none is).
  """
  counts = (category_map.training_counts(training_set) if training_set
            else None)
  classes = []
  for category in ground_truth['categories']:
    name = category['name']
    if counts is not None:
      annotations = counts[category['id']]['annotations']
      images = counts[category['id']]['images']
    else:
      annotations = category.get('instance_count')
      images = category.get('image_count')
    by_area = metrics.get('per_class_by_area', {}).get(name, {})
    classes.append({
        'id': category['id'], 'name': name,
        'frequency': category.get('frequency'),
        'train_annotations': annotations, 'train_images': images,
        'AP': metrics['per_class'][name],
        **{f'AP{area[0]}': by_area.get(area, -1.0) for area in AREAS}})
  classes.sort(key=lambda c: (c['train_annotations'] is None,
                              c['train_annotations'] or 0, c['id']))
  by_frequency = {}
  for group in GROUPS:
    members = [c for c in classes if c['frequency'] == group]
    if not members:
      continue
    by_frequency[group] = {
        name: _mean([c[name] for c in members])
        for name in ('AP', 'APs', 'APm', 'APl')}
    by_frequency[group]['classes'] = len(members)
  return {'classes': classes, 'by_frequency': by_frequency}


def gaussian_smooth(x: Sequence[float], y: Sequence[float], sigma: float,
                    at: Sequence[float]) -> np.ndarray:
  """Gaussian-kernel weighted mean of y at each point of `at`.

  value(a) = sum_i w_i y_i / sum_i w_i,  w_i = exp(-(x_i - a)^2 / (2 sigma^2))
  (the Nadaraya-Watson smoother the paper's Figure 4 curves are drawn with).
  """
  x = np.asarray(x, dtype=np.float64)[None, :]
  y = np.asarray(y, dtype=np.float64)[None, :]
  at = np.asarray(at, dtype=np.float64)[:, None]
  weights = np.exp(-((x - at) ** 2) / (2.0 * sigma ** 2))
  return (weights * y).sum(axis=1) / weights.sum(axis=1)


def plot_per_class(curves: Dict[str, Dict], path: str, title: str = '',
                   sigma: float = LOG_SIGMA) -> Dict[str, tuple]:
  """AP (x100) of each class vs its training annotations, smoothed.

  Args:
    curves: {label: stratify() output}, one line per run (e.g. 'freeze',
      'finetune'); classes without annotations or a defined AP are left out.
    path: PNG to write.
    title: figure title.
    sigma: smoothing width in log10(annotations).

  Returns:
    {label: (annotations, smoothed AP x100)}: the curves drawn.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(7, 4))
  drawn = {}
  for label, stratified in curves.items():
    points = [(c['train_annotations'], 100 * c['AP'])
              for c in stratified['classes']
              if c['train_annotations'] and c['AP'] > -1]
    if not points:
      continue
    x = np.log10([p[0] for p in points])
    y = [p[1] for p in points]
    at = np.linspace(x.min(), x.max(), 100)
    drawn[label] = (10 ** at, gaussian_smooth(x, y, sigma, at))
    line, = axis.plot(*drawn[label], label=label)
    axis.scatter(10 ** x, y, s=8, alpha=0.35, color=line.get_color())
  axis.set_xscale('log')
  axis.set_xlabel('training annotations of the class')
  axis.set_ylabel('AP (per class, x100)')
  axis.set_title(title or f'Per-class AP (Gaussian smoothing, sigma = '
                 f'{sigma} in log10 annotations)', fontsize=9)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return drawn
