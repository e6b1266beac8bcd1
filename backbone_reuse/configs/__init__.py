"""configs of backbone_reuse."""
