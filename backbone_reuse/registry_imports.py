"""Imports every module that registers experiments, tasks or builders."""
# pylint: disable=unused-import
from official.vision import registry_imports as _vision_registry_imports

from backbone_reuse.configs import detection as _detection_configs
from backbone_reuse.shapes import experiments as _shapes_experiments
from backbone_reuse.tasks import detection as _detection_tasks
from backbone_reuse.modeling import decoders as _decoders
from backbone_reuse.modeling import simple_fpn as _simple_fpn
from backbone_reuse.modeling import plain_vit as _plain_vit
