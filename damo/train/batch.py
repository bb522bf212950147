"""Preference rows → :class:`PairBatch`: one image per pair, chosen and rejected sequences stacked.

The prompt goes through the processor's chat template (``USER: <image>\\n{question} ASSISTANT:`` for
LLaVA-1.5); the response is what the template adds after the generation prompt, tokenized without
special tokens and ended with EOS, exactly as TRL's DPO collator does it, so that log-probs are
comparable with that peer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

# Per-token processor outputs some models need over the whole sequence (Qwen-VL's M-RoPE, Gemma):
# the prompt's values, zeros over the response and padding (as TRL builds them).
SEQUENCE_KEYS = ("token_type_ids", "mm_token_type_ids")
# Processor outputs that are not per-image: everything else is passed on with the image features.
TEXT_KEYS = ("input_ids", "attention_mask", "pixel_values", *SEQUENCE_KEYS)


@dataclass
class PairBatch:
    """``B`` pairs. Rows ``0..B-1`` of the sequence tensors are chosen, rows ``B..2B-1`` rejected.

    - ``input_ids``, ``attention_mask``: (2B, T), right-padded;
    - ``response_mask``: (2B, T) bool, True at the response tokens whose log-probs are summed (all of
      them, or a rejected answer's only through its fork: ``train.loss.rejected_tokens``); the sequence
      itself always runs to the answer's end;
    - ``pixel_values``: (B, ...) one image per pair, encoded once for both sequences;
    - ``image_inputs``: other per-image processor outputs (``image_sizes``, ``image_grid_thw``...), (B, ...);
    - ``sequence_inputs``: per-token extras such as ``mm_token_type_ids``, (2B, T).

Per-pair numbers (reference log-probs, δ) are not carried: the trainer reads them from the dataset
columns by index (:class:`damo.train.data.TrainRows`).
    """

    ids: list[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    pixel_values: torch.Tensor
    image_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    sequence_inputs: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_pairs(self) -> int:
        return len(self.ids)

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, dev: torch.device) -> PairBatch:
        return replace(
            self, input_ids=self.input_ids.to(dev), attention_mask=self.attention_mask.to(dev),
            response_mask=self.response_mask.to(dev), pixel_values=self.pixel_values.to(dev),
            image_inputs={k: v.to(dev) for k, v in self.image_inputs.items()},
            sequence_inputs={k: v.to(dev) for k, v in self.sequence_inputs.items()},
        )


def prompt_messages(question: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def completion_text(processor: Any, question: str, answer: str) -> tuple[str, str]:
    """(prompt, completion) strings: the chat template with and without the assistant turn."""
    messages = prompt_messages(question)
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template(
        [*messages, {"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(f"the chat template does not extend the generation prompt {prompt!r} "
                         f"into the full conversation {full!r}; cannot locate the response tokens")
    return prompt, full[len(prompt):]


def _response_ids(tokenizer: Any, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    return ids


def _open_image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _all_tokens(chosen: list[int], rejected: list[int]) -> int:
    """Every token of the rejected answer counts (the paper's and the authors' log-prob)."""
    return len(rejected)


def fork(chosen: list[int], rejected: list[int]) -> int:
    """The first position where two answers' token ids differ (the shorter length if one extends the
    other): the fork of a preference pair."""
    shorter = min(len(chosen), len(rejected))
    return next((i for i, (c, r) in enumerate(zip(chosen, rejected)) if c != r), shorter)


def _through_fork(chosen: list[int], rejected: list[int]) -> int:
    """The rejected answer counts through its fork (its first token that differs from the chosen
    answer); the tokens after it are not part of what the pair says is wrong. Tokens before the fork
    are shared by both answers, so their log-probs cancel in the margin either way."""
    return min(fork(chosen, rejected) + 1, len(rejected))


# train.loss.rejected_tokens → how many leading tokens of a rejected answer its log-prob sums.
REJECTED_TOKENS = {"all": _all_tokens, "through_fork": _through_fork}


def _pad_sequences(prompt_ids: list[list[int]], chosen: list[list[int]], rejected: list[list[int]],
                   pad: int, counted: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (2B, T) ``input_ids``, ``attention_mask``, ``response_mask``; chosen rows first.
    ``counted``: how many leading tokens of each rejected answer the response mask covers."""
    sequences = [p + c for p, c in zip(prompt_ids, chosen)] + [p + r for p, r in zip(prompt_ids, rejected)]
    prompt_lens = [len(p) for p in prompt_ids] * 2
    response_lens = [len(c) for c in chosen] + counted
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    response_mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for i, (seq, start, counts) in enumerate(zip(sequences, prompt_lens, response_lens)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention_mask[i, : len(seq)] = 1
        response_mask[i, start: start + counts] = True
    return input_ids, attention_mask, response_mask


def _sequence_inputs(encoded: Any, shape: torch.Size) -> dict[str, torch.Tensor]:
    """Per-token extras over the (2B, T) sequences: the prompt's values, zeros after it."""
    out = {}
    pairs = shape[0] // 2
    for key in SEQUENCE_KEYS:
        if key not in encoded:
            continue
        values = torch.zeros(shape, dtype=torch.long)
        for i, (row, mask) in enumerate(zip(encoded[key], encoded["attention_mask"])):
            prompt_values = row[mask.bool()]
            values[i, : len(prompt_values)] = prompt_values
            values[pairs + i, : len(prompt_values)] = prompt_values
        out[key] = values
    return out


def collate_pairs(processor: Any, rows: Sequence[dict[str, Any]], rejected_tokens: str = "all") -> PairBatch:
    """Tokenize ``rows`` (dataset records) into a :class:`PairBatch`; ``rejected_tokens`` (a key of
    :data:`REJECTED_TOKENS`, ``train.loss.rejected_tokens``) picks which rejected tokens are summed."""
    count = REJECTED_TOKENS[rejected_tokens]
    tokenizer = processor.tokenizer
    prompts, chosen, rejected = [], [], []
    for row in rows:
        prompt, chosen_text = completion_text(processor, row["question"], row["chosen"])
        _, rejected_text = completion_text(processor, row["question"], row["rejected"])
        prompts.append(prompt)
        chosen.append(_response_ids(tokenizer, chosen_text))
        rejected.append(_response_ids(tokenizer, rejected_text))
    encoded = processor(images=[_open_image(r["image"]) for r in rows], text=prompts, padding=True,
                        return_tensors="pt")
    # Padding side differs between processors: the attention mask says which ids are the prompt.
    prompt_ids = [ids[mask.bool()].tolist()
                  for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    counted = [count(c, r) for c, r in zip(chosen, rejected)]
    input_ids, attention_mask, response_mask = _pad_sequences(prompt_ids, chosen, rejected, pad, counted)
    return PairBatch(
        ids=[str(r["id"]) for r in rows], input_ids=input_ids, attention_mask=attention_mask,
        response_mask=response_mask, pixel_values=torch.as_tensor(encoded["pixel_values"]),
        image_inputs={k: torch.as_tensor(v) for k, v in encoded.items() if k not in TEXT_KEYS},
        sequence_inputs=_sequence_inputs(encoded, input_ids.shape),
    )
