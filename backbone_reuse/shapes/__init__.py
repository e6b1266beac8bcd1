"""The Shapes world: the paper's method, end to end, on a CPU.

  world.py        the generator: upstream classification images and the
                  long-tailed detection scenes (lvis_world.py: a small one in
                  LVIS format, for the LVIS pipeline's tests)
  experiments.py  the registered Shapes experiments and the grid's axes
                  (capacities, strategies, upstreams), defined once
  stages.py       resumable stages with verified markers
  runs.py         one way to train and evaluate (a subprocess per training)
  records.py      the committed records (one atomic writer)
  dev_split.py    the dev split settings are chosen on (another seed)
  demo.py         one frozen detector end to end (`python -m backbone_reuse.demo`)
  design.py       which runs the grid trains (capacities, strategies,
                  upstreams, seeds, schedules, the schedule pilot)
  grid_runner.py  trains them and commits each record; grid.py: its
                  command line (the paper's Table 1/3, Figures 1/4)
  long_schedule.py  the long schedule L, from the pilot's dev scores
  report.py       the grid's report (tables.py, figures.py, claims.py)
  adapters_study.py  why adapters lose to freezing here (a command line)

Nothing outside this package knows the Shapes world; it uses the library
(configs, tasks, modeling, evaluation) like any experiment would.
"""
