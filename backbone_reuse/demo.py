r"""`python -m backbone_reuse.demo`: the Shapes-world demo.

The demo lives with the rest of the Shapes world, in
backbone_reuse/shapes/demo.py; this is its short entry point.
"""
from absl import app

from backbone_reuse.shapes import demo

if __name__ == '__main__':
  demo.define_flags()
  app.run(demo.main)
