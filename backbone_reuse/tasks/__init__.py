"""tasks of backbone_reuse."""
