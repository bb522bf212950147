"""Cutting the padding after EOT does not change a causal CLIP text tower's features."""

from __future__ import annotations

import open_clip
import torch

from damo.hardness.text_encoder import can_trim, encode_texts
from tests.unit.hardness.conftest import CONTEXT, build_tiny_clip


def test_trimmed_length_sorted_chunks_equal_plain_encode_text():
    model = build_tiny_clip()
    assert can_trim(model)
    texts = [
        "a",
        "a red square",
        "there is a blue circle and a green",
        "dog",
        "the cat sits on the mat",
        "dog",
    ]
    tokens = open_clip.SimpleTokenizer(context_length=CONTEXT)(texts)
    with torch.inference_mode():
        plain = model.encode_text(tokens, normalize=True)
        for chunk in (1, 2, 6):
            torch.testing.assert_close(encode_texts(model, tokens, chunk), plain, atol=1e-5, rtol=1e-5)


def test_towers_that_cannot_be_trimmed_use_plain_encode_text():
    class Tower(torch.nn.Module):
        def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
            return tokens[:, :3].float() + 1.0

    tokens = torch.tensor([[5, 9, 0, 0], [5, 7, 8, 9]])
    assert not can_trim(Tower())
    expected = torch.nn.functional.normalize(tokens[:, :3].float() + 1.0, dim=-1)
    torch.testing.assert_close(encode_texts(Tower(), tokens, chunk=1), expected)
