"""Answers from an HF image-text-to-text model folder, batched, written incrementally, resumable.

:class:`HFResponder` wraps ``AutoModelForImageTextToText`` + ``AutoProcessor`` (prompts through the
processor's chat template, left padding, the device and dtype from :mod:`damo.device`).
:func:`generate_answers` drives any responder (tests use a stub) over a benchmark's items for one
decoding and appends one JSON line per answer, so a rerun skips the ids already answered.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch

from damo.config import DecodingConfig
from damo.device import Precision, choose_device, choose_dtype
from damo.eval.items import BenchmarkDataError, EvalItem, append_jsonl, drop_partial_line, iter_jsonl
from damo.models import load_model, load_processor

log = logging.getLogger(__name__)

# (items, decoding) → one answer per item
Responder = Callable[[Sequence[EvalItem], DecodingConfig], list[str]]


def generation_kwargs(decoding: DecodingConfig, max_new_tokens: int) -> dict[str, Any]:
    """``model.generate`` arguments; temperature/top_p only when sampling (else greedy or beam)."""
    kwargs: dict[str, Any] = {"do_sample": decoding.do_sample, "num_beams": decoding.num_beams,
                              "max_new_tokens": decoding.max_new_tokens or max_new_tokens}
    if decoding.do_sample:
        kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p)
    return kwargs


class HFResponder:
    """Generates with a local HF model folder; one call = one padded batch."""

    def __init__(self, model_dir: Path, max_new_tokens: int, seed: int,
                 precision: Precision = "auto") -> None:
        self.device = choose_device()
        self.dtype = choose_dtype(precision)
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.processor = load_processor(model_dir)
        if getattr(self.processor, "chat_template", None) is None:
            raise BenchmarkDataError(f"{model_dir}: the processor has no chat template to build prompts with")
        self.processor.tokenizer.padding_side = "left"  # generation continues on the right
        self.model = cast(Any, load_model(model_dir, precision)).to(self.device).eval()

    def prompts(self, items: Sequence[EvalItem]) -> list[str]:
        return [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": it.question}]}],
            add_generation_prompt=True) for it in items]

    def __call__(self, items: Sequence[EvalItem], decoding: DecodingConfig) -> list[str]:
        inputs = self.processor(images=[it.load_image() for it in items], text=self.prompts(items),
                                padding=True, return_tensors="pt").to(self.device)
        for key, value in inputs.items():  # pixel values (and any other float input) in the model's dtype
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        # seeded by the batch's first id: the same batches (items, batch size) sample the same answers,
        # whichever model or run; sampling is one RNG stream per batch, so other batches differ
        torch.manual_seed(self.seed + zlib.crc32(items[0].id.encode()))
        pad = self.processor.tokenizer.pad_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, **generation_kwargs(decoding, self.max_new_tokens),
                                      pad_token_id=pad)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]  # (batch, generated)
        return [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]


def _existing(path: Path, decoding: DecodingConfig) -> dict[str, dict[str, Any]]:
    """Answers already in ``path``; refuses a file written with other decoding settings."""
    if not path.is_file():
        return {}
    drop_partial_line(path)
    records = {str(r["id"]): r for r in iter_jsonl(path)}
    wanted = decoding.model_dump()
    for record in records.values():
        if record.get("decoding_config") != wanted:
            raise BenchmarkDataError(f"{path} holds answers decoded with {record.get('decoding_config')}, "
                                     f"not {wanted}: remove it or write to another --out")
    return records


def expand_samples(items: Sequence[EvalItem], samples: int) -> list[EvalItem]:
    """One prompt per wanted answer: ``<id>#<k>`` (its own sampling seed), ``item_id`` in the meta."""
    if samples == 1:
        return list(items)
    return [EvalItem(f"{it.id}#{k}", it.question, it.image, {**it.meta, "item_id": it.id, "sample": k})
            for it in items for k in range(samples)]


def generate_answers(responder: Responder, items: Sequence[EvalItem], decoding: DecodingConfig, path: Path,
                     *, benchmark: str, model: str, batch_size: int) -> list[dict[str, Any]]:
    """Answer every item (``decoding.samples`` times) not yet in ``path``; return records in item order."""
    items = expand_samples(items, decoding.samples)
    done = _existing(path, decoding)
    todo = [it for it in items if it.id not in done]
    if done:
        log.info("%s: %d answers already in %s, %d to go", benchmark, len(done), path, len(todo))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        texts = responder(batch, decoding)
        if len(texts) != len(batch):
            raise RuntimeError(f"responder returned {len(texts)} answers for {len(batch)} prompts")
        records = [{"id": it.id, "benchmark": benchmark, "decoding": decoding.name,
                    "decoding_config": decoding.model_dump(), "model": model, "question": it.question,
                    "answer": text, **it.meta} for it, text in zip(batch, texts)]
        append_jsonl(path, records)
        done.update((r["id"], r) for r in records)
        log.info("%s/%s: %d/%d answered", benchmark, decoding.name, len(done), len(items))
    return [done[it.id] for it in items]
