"""The per-pair math of DAMA.md §1, batched: one softmax per pair over chosen ∪ rejected."""

from __future__ import annotations

import torch

from damo.hardness.scoring import pair_scores


def _features(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


def test_batched_softmax_equals_scoring_each_pair_alone():
    images, texts = _features(3, 8, 0), _features(7, 8, 1)
    pair = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    is_chosen = torch.tensor([True, False, True, True, False, True, False])
    scale = torch.tensor(100.0)
    out = pair_scores(images, texts, pair, is_chosen, scale, "softmax")
    for p in range(3):
        mine = pair == p
        alone = torch.softmax(scale * texts[mine] @ images[p], dim=0)
        torch.testing.assert_close(out.sub_scores[mine], alone)
        torch.testing.assert_close(out.chosen_clip[p], alone[is_chosen[mine]].sum())
        torch.testing.assert_close(out.rejected_clip[p], alone[~is_chosen[mine]].sum())
    torch.testing.assert_close(out.chosen_clip + out.rejected_clip, torch.ones(3))
    torch.testing.assert_close(out.delta, out.chosen_clip - out.rejected_clip)


def test_softmax_is_stable_at_large_logits():
    images = torch.tensor([[1.0, 0.0]])
    texts = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    out = pair_scores(
        images, texts, torch.tensor([0, 0]), torch.tensor([True, False]), torch.tensor(1e4), "softmax"
    )
    assert torch.isfinite(out.sub_scores).all()
    torch.testing.assert_close(out.delta, torch.tensor([1.0]))


def test_cosine_mode_sums_raw_cosines():
    images, texts = _features(2, 4, 2), _features(4, 4, 3)
    pair = torch.tensor([0, 0, 1, 1])
    is_chosen = torch.tensor([True, False, False, True])
    out = pair_scores(images, texts, pair, is_chosen, torch.tensor(100.0), "cosine")
    cos = (images[pair] * texts).sum(-1)
    torch.testing.assert_close(out.sub_scores, cos)
    torch.testing.assert_close(out.delta, torch.stack([cos[0] - cos[1], cos[3] - cos[2]]))


def test_half_precision_features_are_scored_in_float32():
    images, texts = _features(1, 8, 4), _features(2, 8, 5)
    pair, is_chosen = torch.tensor([0, 0]), torch.tensor([True, False])
    full = pair_scores(images, texts, pair, is_chosen, torch.tensor(100.0), "softmax")
    half = pair_scores(images.half(), texts.half(), pair, is_chosen, torch.tensor(100.0).half(), "softmax")
    assert half.delta.dtype == torch.float32
    torch.testing.assert_close(half.delta, full.delta, atol=0.05, rtol=0)
