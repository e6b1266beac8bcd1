"""LVIS's category frequency groups, as the annotation files letter them:
rare, common, frequent (Gupta et al. 2019: 1-10, 11-100, >100 training
images). No dependencies, so that any module (a command line that must not
load TensorFlow included) can use them."""
GROUPS = ('r', 'c', 'f')
