"""The Shapes world: the paper's method, end to end, on a CPU.

  world.py        the generator: upstream classification images and the
                  long-tailed detection scenes (lvis_world.py: a small one in
                  LVIS format, for the LVIS pipeline's tests)
  experiments.py  the registered Shapes experiments and the grid's axes
                  (capacities, strategies, upstreams), defined once
  stages.py       resumable stages with verified markers
  demo.py         `python -m backbone_reuse.demo`: one frozen detector
  grid.py         the paper's Table 1/3 and Figures 1/4 in miniature
  report.py       the grid's tables, figures and claims

Nothing outside this package knows the Shapes world; it uses the library
(configs, tasks, modeling, evaluation) like any experiment would.
"""
