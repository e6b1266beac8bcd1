"""Model Garden's image classification model config with our backbone choices
(type 'plain_vit' beside Model Garden's), so an upstream classifier and the
detector that reuses it share one backbone config (e.g. a plain ViT
pretrained by Model Garden's own classification task)."""
import dataclasses

from official.vision.configs import image_classification

from backbone_reuse.configs import detection


@dataclasses.dataclass
class ImageClassificationModel(image_classification.ImageClassificationModel):
  backbone: detection.Backbone = dataclasses.field(
      default_factory=lambda: detection.Backbone(type='resnet'))
