"""Which pairs are hard, by measurement: how strongly CLIP and the SFT policy prefer the true answer.

Per pair (true description t, hallucinating answer h, image x):
- ``clip_margin`` = cos(x, t) − cos(x, h) under the world's CLIP (its embeddings normalised);
- ``sft_margin`` = log π_SFT(t | x, q) − log π_SFT(h | x, q), summed over the answer tokens and ``</s>``.

A pair is ``hard`` when the SFT policy prefers the truth by less than ``tiny_world.hard_margin`` nats
(it ranks the pair wrong, or nearly so) or when CLIP does not score t above h; else ``easy``. Both
margins are stored per pair, so a reader can re-cut at another threshold. Margins are measured on
the true orientation, so a label-noise swap does not change a pair's hardness.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from damo.tinyworld.clip import Tokenizer, similarities
from damo.tinyworld.policy import answer_logps

MEASURE_BATCH = 256  # pairs per forward pass: memory only, results do not depend on it


def clip_margins(model: Any, tokenizer: Tokenizer, pixels: torch.Tensor, pairs: list[tuple[str, str]]
                 ) -> list[float]:
    """cos(image, true) − cos(image, hallucinating) per pair; ``pixels`` CLIP-preprocessed (N, 3, H, W)."""
    out: list[float] = []
    for start in range(0, len(pairs), MEASURE_BATCH):
        chunk = pairs[start:start + MEASURE_BATCH]
        sims = similarities(model, tokenizer, pixels[start:start + MEASURE_BATCH], [list(p) for p in chunk])
        out += [float(s[0] - s[1]) for s in sims]
    return out


def sft_margins(model: LlavaForConditionalGeneration, processor: LlavaProcessor, pixels: torch.Tensor,
                questions: list[str], pairs: list[tuple[str, str]]) -> list[float]:
    """log p(true) − log p(hallucinating) under the policy; ``pixels`` policy-processed (N, 3, H, W)."""
    true = answer_logps(model, processor, pixels, questions, [t for t, _ in pairs], MEASURE_BATCH)
    false = answer_logps(model, processor, pixels, questions, [h for _, h in pairs], MEASURE_BATCH)
    return (true - false).tolist()


def classify(clip_margin: float, sft_margin: float, hard_margin: float) -> str:
    """``hard`` when either judge barely (or wrongly) prefers the truth, else ``easy``."""
    return "hard" if sft_margin < hard_margin or clip_margin <= 0.0 else "easy"


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per construction kind: pairs, share measured hard, and how often each judge ranks it right."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["kind"]].append(row)
        groups["all"].append(row)
    out = {}
    for kind, members in sorted(groups.items()):
        n = len(members)
        out[kind] = {
            "pairs": float(n),
            "hard_share": sum(r["hardness"] == "hard" for r in members) / n,
            "sft_ranks_right": sum(r["sft_margin"] > 0 for r in members) / n,
            "clip_ranks_right": sum(r["clip_margin"] > 0 for r in members) / n,
            "sft_margin_mean": sum(r["sft_margin"] for r in members) / n,
            "swapped_share": sum(bool(r["swapped"]) for r in members) / n,
        }
    return out
