"""Backbone type 'plain_vit': Model Garden's VisionTransformer sized by its
config (configs/detection.PlainViT), registered with the backbone factory.

Model Garden's own `vit` builder overrides the config's sizes with
VIT_SPECS[model_name], so it cannot build a ViT smaller than ViT-Ti/16 (the
Shapes world's) or one sized by hand; this builder passes the config's
fields to the same class, so its variables are named as in Model Garden's
ViT checkpoints. Its stages, for backbone_strategy 'partial' (`stages`):
the patch and position embeddings (and the class token, if any), then each
transformer block; the encoder's final LayerNorm goes with the last block.
"""
from typing import List

from official.vision.modeling.backbones import factory
from official.vision.modeling.backbones import vit
import tf_keras

from backbone_reuse.configs import strategies


@factory.register_backbone_builder(strategies.PLAIN_VIT)
def build_plain_vit(input_specs, backbone_config, norm_activation_config,
                    l2_regularizer=None) -> vit.VisionTransformer:
  """Model Garden's VisionTransformer with the config's sizes (a ViT has no
  BatchNorm: `norm_activation_config` is not used)."""
  del norm_activation_config
  config = backbone_config.get()
  return vit.VisionTransformer(
      mlp_dim=config.transformer.mlp_dim,
      num_heads=config.transformer.num_heads,
      num_layers=config.transformer.num_layers,
      attention_dropout_rate=config.transformer.attention_dropout_rate,
      dropout_rate=config.transformer.dropout_rate,
      init_stochastic_depth_rate=config.init_stochastic_depth_rate,
      input_specs=input_specs,
      patch_size=config.patch_size,
      hidden_size=config.hidden_size,
      representation_size=config.representation_size,
      pooler=config.pooler,
      kernel_regularizer=l2_regularizer,
      original_init=config.original_init,
      output_encoded_tokens=config.output_encoded_tokens,
      output_2d_feature_maps=config.output_2d_feature_maps,
      pos_embed_shape=config.pos_embed_shape,
      layer_scale_init_value=config.layer_scale_init_value,
      transformer_partition_dims=config.transformer_partition_dims,
      output_attention_scores=config.output_attention_scores)


def stages(backbone: vit.VisionTransformer) -> List[List[tf_keras.layers.Layer]]:
  """[the embeddings, block 1, ..., block N and the final LayerNorm].

  The embeddings: the patch-embedding convolution, the class token (pooler
  'token') and the encoder's position embedding and the dropout after it.
  """
  (encoder,) = [l for l in backbone.layers if isinstance(l, vit.Encoder)]
  blocks = list(encoder._encoder_layers)  # pylint: disable=protected-access
  # Layers with weights outside the encoder: the patch embedding, the class
  # token and, with a representation_size, the pre-logits Dense after it.
  outside = [l for l in backbone.layers if l.weights and l is not encoder]
  after = [l for l in outside if l.name == 'pre_logits']
  embeddings = [l for l in outside if l not in after] + [
      encoder._pos_embed, encoder._dropout]  # pylint: disable=protected-access
  found = [embeddings] + [[block] for block in blocks]
  found[-1] += [encoder._norm, *after]  # pylint: disable=protected-access
  return found
