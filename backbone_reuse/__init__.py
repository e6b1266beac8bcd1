"""backbone_reuse: reuse classification backbones for detection (CVPR 2022)."""
