"""Input-pipeline additions to Model Garden (Copy-Paste)."""
