"""LLaVA-1.5 at tiny width: llava-hf/llava-1.5-7b-hf's architecture, config keys, image layout and chat
template, with every size shrunk (vocabulary, widths, depths). Built in-process in seconds.

Kept as published: CLIP ViT vision tower at 336 px with 14 px patches (24 × 24 = 576 image tokens, the
CLS token dropped by ``vision_feature_select_strategy="default"``), features from layer −2, a 2-layer
GELU projector with bias, a Llama language model, ``<image>``/``<pad>`` special tokens, OpenAI CLIP
image normalisation and the ``USER: <image>\\n… ASSISTANT:`` chat template (llava-hf's
``chat_template.json``). Changed: widths, depths, heads and a BPE vocabulary of a few hundred tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

from tests.unit.train.tiny import save_llava, tiny_tokenizer

IMAGE_SIZE, PATCH_SIZE = 336, 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 576
FEATURE_LAYER = -2
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# llava-hf/llava-1.5-7b-hf chat_template.json
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def build_llava15_tiny(folder: Path, seed: int = 0) -> Path:
    """Save the model, processor and generation config into ``folder`` (what the hub repo holds)."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(seed)
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, hidden_size=16,
                              intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              projection_dim=16, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                       rms_norm_eps=1e-5, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         image_seq_length=IMAGE_TOKENS, projector_hidden_act="gelu",
                         vision_feature_select_strategy="default", vision_feature_layer=FEATURE_LAYER,
                         multimodal_projector_bias=True, pad_token_id=tokenizer.pad_token_id)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_center_crop=True,
                                do_convert_rgb=True, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                                resample=3)
    return save_llava(folder, model, images, tokenizer, PATCH_SIZE, CHAT_TEMPLATE)
