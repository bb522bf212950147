"""Encoding sub-sentences fast: sorted by length, in chunks, each cut to its longest text.

OpenAI-style CLIP text towers (open_clip ``CLIP``: causal attention mask, features pooled at the EOT
token = the highest token id) give the same features whatever follows the EOT token, because no
position attends to later ones. So the padding up to the context length (77) can be cut: a chunk of
texts of similar length runs on ``(chunk, longest)`` tokens instead of ``(chunk, 77)``. Other towers
(HF text encoders, non-causal) take the plain ``encode_text`` path, in the same chunks. Duplicate
texts are encoded once, and with a :class:`~damo.hardness.cache.FeatureCache` so are texts seen in
earlier batches.
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool

from damo.hardness.cache import FeatureCache


def can_trim(model: Any) -> bool:
    """True for open_clip CLIP text towers with a causal mask and EOT (argmax) pooling."""
    return (
        isinstance(model, open_clip.CLIP)
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", None) == "argmax"
    )


def _encode_trimmed(model: Any, text: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` on text (N, L), L ≤ context: position embedding and causal mask cut
    to L. Returns (N, D) unnormalised."""
    length = text.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, text, model.text_pool_type)
    if model.text_projection is not None:
        x = (
            model.text_projection(x)
            if isinstance(model.text_projection, torch.nn.Linear)
            else x @ model.text_projection
        )
    return x


def _encode_sorted(model: Any, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    trim = can_trim(model)
    ends = tokens.argmax(dim=-1) + 1  # one past the EOT token (the highest id) of each text
    order = torch.argsort(ends, stable=True) if trim else torch.arange(len(tokens), device=tokens.device)
    parts = []
    for index in order.split(chunk):
        if trim:
            parts.append(_encode_trimmed(model, tokens[index, : int(ends[index].max())]))
        else:
            parts.append(model.encode_text(tokens[index]))
    features = torch.empty((len(tokens), parts[0].shape[-1]), dtype=parts[0].dtype, device=parts[0].device)
    features[order] = torch.cat(parts)
    return features


def encode_texts(
    model: Any, tokens: torch.Tensor, chunk: int, cache: FeatureCache | None = None
) -> torch.Tensor:
    """L2-normalised features (T, D) of tokens (T, context), ``chunk`` texts per forward pass.

    Identical texts (a sentence shared by the chosen and the rejected answer, common when both were
    sampled from one model) are encoded once; texts found in ``cache`` are not encoded again.
    """
    unique, inverse = torch.unique(tokens, dim=0, return_inverse=True)
    keys = [row.tobytes() for row in unique.cpu().numpy()]

    def encode(index: list[int]) -> torch.Tensor:
        return F.normalize(_encode_sorted(model, unique[index], chunk), dim=-1)

    return (cache or FeatureCache(0)).features(keys, encode)[inverse]
