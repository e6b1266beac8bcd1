"""Evaluation: COCO metrics with per-class and frequency-group AP."""
