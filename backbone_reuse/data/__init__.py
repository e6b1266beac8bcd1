"""data of backbone_reuse."""
