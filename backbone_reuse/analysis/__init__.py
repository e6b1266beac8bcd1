"""analysis of backbone_reuse."""
