"""A tiny LLaVA and a tiny preference dataset, built in-process in about a second (no downloads).

Used by the train/reference tests (unit and integration). The tiny world of ``damo.tinyworld``
is the realistic one; this is the smallest thing with the real architecture and the data contract.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from damo.data.dataset import BASE_SCHEMA, DatasetWriter, extended_schema

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "triangle"]
EXTRA = ["dog", "cat", "tree", "car"]
WORDS = [*COLOURS, *SHAPES, *EXTRA, "there", "is", "a", "an", "and", "the", "what", "do", "you", "see", "in",
         "image", "."]
IMG, PATCH = 16, 8

CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %} {% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def tiny_tokenizer(seed: int = 0) -> Any:
    """A byte-level BPE tokenizer of 320 tokens over ``WORDS``, with LLaVA's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    corpus = [" ".join(rng.choices(WORDS, k=8)) for _ in range(400)] + ["USER: ASSISTANT:"] * 20
    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"})


def save_llava(folder: Path, model: Any, image_processor: Any, tokenizer: Any, patch_size: int,
               chat_template: str) -> Path:
    """``model`` and its LlavaProcessor (CLS dropped: ``vision_feature_select_strategy="default"``)."""
    from transformers import LlavaProcessor

    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=chat_template)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_llava(folder: Path, seed: int = 0) -> Path:
    """Save a ~60k-parameter LlavaForConditionalGeneration + LlavaProcessor into ``folder``."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(seed)
    vcfg = CLIPVisionConfig(image_size=IMG, patch_size=PATCH, hidden_size=16, intermediate_size=32,
                            num_hidden_layers=2, num_attention_heads=2, projection_dim=16)
    tcfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    cfg = LlavaConfig(vision_config=vcfg, text_config=tcfg,
                      image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                      image_seq_length=(IMG // PATCH) ** 2, vision_feature_select_strategy="default",
                      vision_feature_layer=-2)
    model = LlavaForConditionalGeneration(cfg)
    imgproc = CLIPImageProcessor(size={"shortest_edge": IMG}, crop_size={"height": IMG, "width": IMG})
    return save_llava(folder, model, imgproc, tokenizer, PATCH, CHAT_TEMPLATE)


def _png(colour: int, rng: random.Random) -> bytes:
    arr = np.zeros((IMG, IMG, 3), dtype=np.uint8)
    arr[..., colour % 3] = 200
    arr += np.array([rng.randrange(0, 40) for _ in range(IMG * IMG * 3)], dtype=np.uint8).reshape(arr.shape)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def build_tiny_pairs(folder: Path, num_pairs: int = 32, validation: int = 8, seed: int = 0,
                     with_delta: bool = True) -> Path:
    """A scored preference dataset (``delta`` + manifest ``delta_mean``) plus a ``hardness`` column."""
    rng = random.Random(seed)
    fields = [pa.field("hardness", pa.string())]
    if with_delta:
        fields.append(pa.field("delta", pa.float64()))
    writer = DatasetWriter(folder, schema=extended_schema(BASE_SCHEMA, fields))
    deltas = []
    for i in range(num_pairs):
        c, s = rng.randrange(len(COLOURS)), rng.randrange(len(SHAPES))
        hard = i % 2 == 1
        wrong = COLOURS[(c + 1) % len(COLOURS)] + " " + SHAPES[s] if hard else \
            COLOURS[c] + " " + SHAPES[s] + " and a " + rng.choice(EXTRA)
        row = {"id": f"p{i:04d}", "split": "validation" if i >= num_pairs - validation else "train",
               "image": _png(c, rng), "question": "what do you see", "source": "tiny-test",
               "chosen": f"there is a {COLOURS[c]} {SHAPES[s]} .", "rejected": f"there is a {wrong} .",
               "hardness": "hard" if hard else "easy"}
        if with_delta:
            row["delta"] = rng.uniform(-0.2, 0.1) if hard else rng.uniform(0.1, 0.6)
            deltas.append(row["delta"])
        writer.write(row)
    if with_delta:
        writer.statistics["delta_mean"] = {"value": float(np.mean(deltas)),
                                           "provenance": {"computed_by": "tests.unit.train.tiny"}}
    writer.close()
    return folder


QWEN_SPECIALS = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen2vl(folder: Path, seed: int = 0) -> Path:
    """A tiny Qwen2-VL (M-RoPE, patch-list pixel values, 4 image tokens for a 56-px image)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    rng = random.Random(seed)
    torch.manual_seed(seed)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(rng.choices(WORDS, k=8)) for _ in range(400)] + ["user assistant"] * 10
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=QWEN_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3],
                                         "rope_theta": 1e4},
                     "max_position_embeddings": 512, "bos_token_id": None, "eos_token_id": ids["<|im_end|>"],
                     "pad_token_id": ids["<pad>"]},
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "patch_size": 14,
                       "spatial_merge_size": 2, "in_chans": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    model = Qwen2VLForConditionalGeneration(config)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_TEMPLATE)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_selection_images(folder: Path, images: int = 3) -> Path:
    """Held-out tiny-world images for ``train.select`` (the world's own benchmark writer)."""
    from damo.config import load_config
    from damo.tinyworld.build import write_benchmark

    config = load_config("tiny", [f"tiny_world.selection_images={images}"])
    write_benchmark(config.tiny_world, 0, folder, set(), name="selection")
    return folder
