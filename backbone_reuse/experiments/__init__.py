"""Drivers that reproduce the paper's tables and figures (in miniature)."""
