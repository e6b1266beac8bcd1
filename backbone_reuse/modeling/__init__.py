"""modeling of backbone_reuse."""
