"""The per-pair CLIP hardness math of DAMA.md §1, batched over pairs.

Texts of a batch are flat: text ``t`` belongs to pair ``pair[t]`` and is a chosen (``is_chosen[t]``)
or a rejected sub-sentence. ``softmax``: one softmax per pair over the union of its chosen and
rejected sub-sentences of ``logit_scale · cos(image, text)``, so a pair's scores sum to 1.
``cosine``: the raw cosine. Then ``c_w = Σ chosen scores``, ``c_l = Σ rejected scores``,
``δ = c_w − c_l``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

SCORES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]] = {}


@dataclass
class PairScores:
    """``sub_scores`` (T,): one per text; ``chosen_clip``, ``rejected_clip``, ``delta`` (B,)."""

    sub_scores: torch.Tensor
    chosen_clip: torch.Tensor
    rejected_clip: torch.Tensor
    delta: torch.Tensor


def _segment_softmax(logits: torch.Tensor, pair: torch.Tensor, num_pairs: int) -> torch.Tensor:
    """Softmax of ``logits`` (T,) within each group of equal ``pair`` (T,) ids in [0, num_pairs)."""
    peak = torch.full((num_pairs,), float("-inf"), dtype=logits.dtype, device=logits.device)
    peak = peak.scatter_reduce(0, pair, logits, reduce="amax", include_self=True)
    weights = torch.exp(logits - peak[pair])  # shift by the pair's max: no overflow at scale 100
    totals = torch.zeros(num_pairs, dtype=logits.dtype, device=logits.device).index_add_(0, pair, weights)
    return weights / totals[pair]


def _softmax(cos: torch.Tensor, scale: torch.Tensor, pair: torch.Tensor, num_pairs: int) -> torch.Tensor:
    return _segment_softmax(scale * cos, pair, num_pairs)


def _cosine(cos: torch.Tensor, scale: torch.Tensor, pair: torch.Tensor, num_pairs: int) -> torch.Tensor:
    return cos


SCORES.update(softmax=_softmax, cosine=_cosine)


def pair_scores(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    pair: torch.Tensor,
    is_chosen: torch.Tensor,
    logit_scale: torch.Tensor,
    mode: str,
) -> PairScores:
    """Scores of a batch of pairs.

    image_features (B, D) and text_features (T, D): L2-normalised embeddings (any float dtype; the
    math runs in float32). pair (T,) long: the pair of each text. is_chosen (T,) bool.
    logit_scale: CLIP's temperature, already exponentiated (100 for OpenAI CLIP).
    """
    num_pairs = image_features.shape[0]
    image = image_features.float()
    cos = (image[pair] * text_features.float()).sum(-1)  # (T,): each text against its own pair's image
    scores = SCORES[mode](cos, logit_scale.float(), pair, num_pairs)
    chosen = torch.zeros(num_pairs, device=cos.device).index_add_(0, pair, scores * is_chosen)
    rejected = torch.zeros(num_pairs, device=cos.device).index_add_(0, pair, scores * ~is_chosen)
    return PairScores(scores, chosen, rejected, chosen - rejected)
