"""The Shapes grid's figures: Figure 1 (AP against training memory and
step time, finetune -> freeze) and Figure 4 (per-class AP relative to
fine-tuning against the class's training instances)."""
from typing import Dict, List

import matplotlib
matplotlib.use('Agg')
# pylint: disable=g-import-not-at-top
from matplotlib import pyplot as plt
import numpy as np

from backbone_reuse.evaluation import stratified
from backbone_reuse.shapes import tables
from backbone_reuse.shapes.experiments import CAPACITIES
from backbone_reuse.shapes.experiments import CAPACITY_TITLES
from backbone_reuse.shapes.experiments import PAIR
from backbone_reuse.shapes.experiments import UPSTREAMS


def figure1(records: List[Dict], path: str) -> None:
  """AP vs peak memory and vs step time; arrows finetune -> freeze."""
  groups = tables.group(records)
  figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  colors = {'fpn': 'tab:blue', 'nasfpn': 'tab:orange',
            'nasfpn_cascade': 'tab:green'}
  markers = {'small': 'o', 'large': 's'}
  measures = (('tf_peak_mb', 'training peak memory, TF allocator (GB)',
               1 / 1024),
              ('median_step_seconds', 'training step time (s, median)', 1))
  for axis, (field, label, factor) in zip(axes, measures):
    for capacity in CAPACITIES:
      for upstream in UPSTREAMS:
        points = {}
        for strategy in PAIR:
          runs = groups.get((capacity, strategy, upstream), [])
          if runs:
            points[strategy] = (
                factor * tables.mean([tables.resource(r, field) for r in runs]),
                100 * tables.mean(tables.metric(runs, 'box', 'AP')))
        for strategy, (x, y) in points.items():
          axis.scatter(x, y, color=colors[capacity],
                       marker=markers[upstream],
                       facecolors='none' if strategy == 'finetune' else None)
        adapted = groups.get((capacity, 'adapters', upstream), [])
        if adapted:
          axis.scatter(
              factor * tables.mean([tables.resource(r, field) for r in adapted]),
              100 * tables.mean(tables.metric(adapted, 'box', 'AP')), marker='*', s=120,
              color=colors[capacity])
        if len(points) == 2:
          axis.annotate('', xy=points['freeze'], xytext=points['finetune'],
                        arrowprops=dict(arrowstyle='->',
                                        color=colors[capacity]))
    axis.set_xlabel(label)
    axis.set_ylabel('box AP (val)')
    axis.grid(alpha=0.3)
  handles = [plt.Line2D([], [], color=c, marker='s', linestyle='',
                        label=CAPACITY_TITLES[k]) for k, c in colors.items()]
  handles += [plt.Line2D([], [], color='grey', marker=m, linestyle='',
                         label=f'{u} upstream') for u, m in markers.items()]
  if any(k[1] == 'adapters' for k in groups):
    handles.append(plt.Line2D([], [], color='grey', marker='*',
                              linestyle='', label='adapters'))
  axes[1].legend(handles=handles, fontsize=8, loc='best')
  figure.suptitle('Fine-tune (hollow) → freeze (filled): AP vs training '
                  'resources (Shapes world)')
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)

def relative_per_class(records_by_strategy: Dict[str, List[Dict]],
                       reference: List[Dict],
                       annotations: Dict[str, int]):
  """(annotations, AP - reference AP) per class with a defined AP, per
  strategy; per-class APs are averaged over seeds first."""
  def mean_per_class(runs):
    classes = runs[0]['results']['box']['per_class']
    return {c: tables.mean([r['results']['box']['per_class'][c] for r in runs])
            for c in classes}
  base = mean_per_class(reference)
  curves = {}
  for strategy, runs in records_by_strategy.items():
    if not runs:
      continue
    ap = mean_per_class(runs)
    pairs = sorted((annotations[c], 100 * (ap[c] - base[c])) for c in ap
                   if ap[c] >= 0 and base[c] >= 0)
    curves[strategy] = pairs
  return curves

def figure4(records: List[Dict], annotations: Dict[str, int],
            path: str) -> None:
  """Per-class box AP relative to fine-tuning vs training annotations."""
  groups = tables.group(records)
  figure, axes = plt.subplots(1, len(CAPACITIES), figsize=(14, 4),
                              sharey=True)
  styles = {'freeze': 'tab:green', 'scratch': 'tab:red',
            'adapters': 'tab:purple'}
  dashes = {'large': '-', 'small': '--'}
  for axis, capacity in zip(axes, CAPACITIES):
    for upstream in UPSTREAMS:
      reference = groups.get((capacity, 'finetune', upstream), [])
      if not reference:
        continue
      curves = relative_per_class(
          {'freeze': groups.get((capacity, 'freeze', upstream), []),
           'scratch': groups.get((capacity, 'scratch', None), []),
           'adapters': groups.get((capacity, 'adapters', upstream), [])},
          reference, annotations)
      for strategy, pairs in curves.items():
        x = np.log10([p[0] for p in pairs])
        y = [p[1] for p in pairs]
        at = np.linspace(x.min(), x.max(), 100)
        axis.plot(10 ** at,
                  stratified.gaussian_smooth(x, y, stratified.LOG_SIGMA, at),
                  dashes[upstream], color=styles[strategy],
                  label=f'{strategy} vs finetune ({upstream} upstream)')
        if upstream == 'large':
          axis.scatter(10 ** x, y, s=8, color=styles[strategy], alpha=0.35)
    axis.axhline(0, color='black', linewidth=0.8)
    axis.set_xscale('log')
    axis.set_title(CAPACITY_TITLES[capacity])
    axis.set_xlabel('training annotations of the class')
    axis.grid(alpha=0.3)
  axes[0].set_ylabel('box AP − fine-tune box AP (per class)')
  axes[-1].legend(fontsize=7, loc='best')
  figure.suptitle('Class-wise AP relative to fine-tuning (curves: Gaussian '
                  f'smoothing, σ = {stratified.LOG_SIGMA} in log10 annotations; dots: '
                  'classes, large upstream)')
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def schedule_figure(points: Dict[str, Dict[int, Dict[int, float]]],
                    title: str, path: str) -> None:
  """Box AP against detector steps (log scale) per strategy: each seed's
  run as a point, the mean over seeds as a line.

  Args:
    points: {strategy: {steps: {seed: box AP x 100}}}
      (long_schedule.val_ap_by_steps).
    title: the detector, the upstream and the split.
    path: where the PNG goes.
  """
  figure, axis = plt.subplots(figsize=(6, 4.2))
  colors = {'freeze': 'tab:blue', 'finetune': 'tab:orange'}
  for strategy, by_steps in points.items():
    steps = sorted(by_steps)
    if not steps:
      continue
    color = colors.get(strategy)
    for n in steps:
      aps = list(by_steps[n].values())
      axis.scatter([n] * len(aps), aps, s=14, alpha=0.5, color=color)
    axis.plot(steps, [float(np.mean(list(by_steps[n].values())))
                      for n in steps],
              marker='o', color=color, label=f'{strategy} (mean over seeds)')
  axis.set_xscale('log')
  ticks = sorted({n for by_steps in points.values() for n in by_steps})
  axis.set_xticks(ticks)
  axis.set_xticklabels([f'{n:,}' for n in ticks])
  axis.minorticks_off()
  axis.set_xlabel('detector training steps (batch 8; log scale)')
  axis.set_ylabel('box AP × 100')
  axis.set_title(title, fontsize=9)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8, loc='lower right')
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
