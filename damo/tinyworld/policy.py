"""The tiny LLaVA policy: built from a config, SFT'd on noisy captions, measured by sampling.

Architecture: ``LlavaForConditionalGeneration`` = a CLIP vision tower (``image_size/patch_size``
squared patches) → 2-layer projector → a small Llama. SFT is a plain AdamW loop on answers only
(prompt and image tokens carry label -100). The captions are noisy on purpose (see pairs.py), so the
SFT policy keeps a hallucination prior that shows under sampled decoding.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from damo.config import TinyWorldConfig
from damo.tinyworld.optim import fit
from damo.tinyworld.tokenizer import EOS, image_seq_length, prompt
from damo.tinyworld.vocab import QUESTIONS, Scene

log = logging.getLogger(__name__)
IGNORE_INDEX = -100  # transformers' label value for "no loss here"


def build_policy(cfg: TinyWorldConfig, processor: LlavaProcessor, seed: int) -> LlavaForConditionalGeneration:
    """A freshly initialised tiny LLaVA whose image-token count matches ``processor``."""
    tok = processor.tokenizer
    vision = CLIPVisionConfig(
        image_size=cfg.image_size, patch_size=cfg.patch_size, hidden_size=cfg.vision_width,
        intermediate_size=2 * cfg.vision_width, num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.attention_heads, projection_dim=cfg.vision_width,
    )
    text = LlamaConfig(
        vocab_size=len(tok), hidden_size=cfg.text_width, intermediate_size=2 * cfg.text_width,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.attention_heads,
        num_key_value_heads=cfg.attention_heads,
        max_position_embeddings=image_seq_length(cfg) + 4 * cfg.max_new_tokens,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids(tok.image_token),
        image_seq_length=image_seq_length(cfg), vision_feature_select_strategy="default",
        vision_feature_layer=cfg.vision_feature_layer,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.max_new_tokens = cfg.max_new_tokens
    return model


@dataclass
class SftBatch:
    """input_ids/attention_mask/labels (B, T) right-padded; pixel_values (B, 3, H, W)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor


def sft_batch(processor: LlavaProcessor, pixel_values: torch.Tensor, questions: list[str],
              answers: list[str]) -> SftBatch:
    """Tokenise prompt + answer; the loss sees only the answer and its ``</s>``."""
    tok = processor.tokenizer
    # Expand <image> as the processor does, without re-processing the images every step.
    expand = tok.image_token * processor_image_tokens(processor)
    prompts = [prompt(q).replace(tok.image_token, expand) for q in questions]
    prompt_ids = [tok(p)["input_ids"] for p in prompts]
    full_ids = [tok(p + " " + a + EOS)["input_ids"] for p, a in zip(prompts, answers)]
    width = max(len(f) for f in full_ids)
    ids = torch.full((len(full_ids), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for i, (p, f) in enumerate(zip(prompt_ids, full_ids)):
        ids[i, : len(f)] = torch.tensor(f)
        mask[i, : len(f)] = 1
        labels[i, len(p): len(f)] = torch.tensor(f[len(p):])
    return SftBatch(ids, mask, labels, pixel_values)


def processor_image_tokens(processor: LlavaProcessor) -> int:
    """Tokens ``<image>`` expands to: patches + extra (CLS) tokens − 1 for the "default" strategy."""
    size = processor.image_processor.crop_size
    patches = (size["height"] // processor.patch_size) * (size["width"] // processor.patch_size)
    dropped = 1 if processor.vision_feature_select_strategy == "default" else 0
    return patches + processor.num_additional_image_tokens - dropped


def sft(model: LlavaForConditionalGeneration, processor: LlavaProcessor, pixel_values: torch.Tensor,
        scenes: list[Scene], caption_fn: Callable[[Scene, random.Random], str], cfg: TinyWorldConfig,
        seed: int, *, steps: int | None = None, stage: str = "sft") -> list[float]:
    """``steps`` (default ``cfg.sft_steps``) AdamW steps on (image, caption_fn(scene)) batches; returns
    the losses. Parameters that do not require grad stay as they are (AdamW skips them).

    ``pixel_values`` (N, 3, H, W) are the processed images of ``scenes`` (N of them). ``stage`` names
    the batch draws' random stream and the progress lines.
    """
    rng = random.Random(f"{stage}-{seed}")
    torch.manual_seed(seed)
    questions = list(QUESTIONS)

    def batch_loss() -> torch.Tensor:
        idx = [rng.randrange(len(scenes)) for _ in range(cfg.sft_batch_size)]
        batch = sft_batch(processor, pixel_values[idx], [rng.choice(questions) for _ in idx],
                          [caption_fn(scenes[i], rng) for i in idx])
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     pixel_values=batch.pixel_values, labels=batch.labels).loss

    return fit(model, batch_loss, cfg.sft_learning_rate, cfg.sft_steps if steps is None else steps,
               cfg.warmup_ratio, stage)


def perception(model: LlavaForConditionalGeneration) -> list[torch.nn.Module]:
    """The modules that turn pixels into the language model's image tokens: tower and projector."""
    return [model.model.vision_tower, model.model.multi_modal_projector]


@torch.no_grad()
def answer_logps(model: LlavaForConditionalGeneration, processor: LlavaProcessor, pixel_values: torch.Tensor,
                 questions: list[str], answers: list[str], batch_size: int) -> torch.Tensor:
    """log π(answer + ``</s>`` | image, question) per row, summed over the answer's tokens: (N,)."""
    out = []
    for start in range(0, len(answers), batch_size):
        rows = slice(start, start + batch_size)
        batch = sft_batch(processor, pixel_values[rows], questions[rows], answers[rows])
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       pixel_values=batch.pixel_values).logits[:, :-1].float()
        labels = batch.labels[:, 1:]
        token_logps = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out.append((token_logps * (labels != IGNORE_INDEX)).sum(-1))
    return torch.cat(out)


@torch.no_grad()
def generate(model: LlavaForConditionalGeneration, processor: LlavaProcessor, pixel_values: torch.Tensor,
             questions: list[str], *, sample: bool, max_new_tokens: int, seed: int,
             batch_size: int) -> list[str]:
    """Answers for N images (``pixel_values`` (N, 3, H, W)); sampling at temperature 1 or greedy."""
    tok = processor.tokenizer
    side, tok.padding_side = tok.padding_side, "left"  # generation continues every row at the end
    expand = tok.image_token * processor_image_tokens(processor)
    torch.manual_seed(seed)
    answers: list[str] = []
    try:
        for start in range(0, len(questions), batch_size):
            texts = [prompt(q).replace(tok.image_token, expand) for q in questions[start:start + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True)
            out = model.generate(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                pixel_values=pixel_values[start:start + batch_size], max_new_tokens=max_new_tokens,
                do_sample=sample, temperature=1.0 if sample else None, top_k=0 if sample else None,
                top_p=1.0 if sample else None,
            )
            new = out[:, enc["input_ids"].shape[1]:]
            answers += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    finally:
        tok.padding_side = side
    return answers
