"""Summed response log-probs of chosen and rejected, with each pair's image encoded once.

Every peer (TRL, the authors' LLaVA code) runs the vision tower twice per pair, once for chosen and
once for rejected. Here the image features are computed once per pair and handed to the language
model for both sequences through transformers' ``mm_encoder_outputs`` (the same hook every
image-text-to-text model of transformers 5 offers), and the LM head runs only at response positions,
in chunks, each recomputed in backward (activation checkpointing), so that full-vocabulary fp32 logits
never exist for the whole batch at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from damo.train.batch import PairBatch


def unwrap(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (LoRA layers are injected in place)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _doubled(features: Any) -> Any:
    """Per-image features of B pairs → the same features for 2B sequences (chosen, then rejected)."""
    if isinstance(features, torch.Tensor):
        return torch.cat([features, features], dim=0)
    return list(features) * 2


def _token_logps(lm_head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probs of ``targets`` (N,) under ``lm_head(hidden)`` ((N, H) → (N, V) logits) → (N,) fp32."""
    logits = lm_head(hidden).float()
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


class PairLogps(nn.Module):
    """``forward(batch) -> (chosen_logps, rejected_logps)``, each (B,) fp32, summed over response tokens.

    Holds the HF model as ``self.model`` so that DeepSpeed wraps (and ZeRO-3 partitions) it whole.
    ``chunk_tokens`` bounds how many response positions get full-vocabulary logits at once.
    """

    def __init__(self, model: nn.Module, chunk_tokens: int):
        super().__init__()
        self.model = model
        self.chunk_tokens = chunk_tokens

    def hidden_states(self, batch: PairBatch) -> torch.Tensor:
        """Last hidden states (2B, T, H) of the language model; the vision tower runs on B images."""
        hf = unwrap(self.model)
        pixel_values = batch.pixel_values.to(dtype=next(hf.parameters()).dtype)
        image = hf.get_image_features(pixel_values=pixel_values, return_dict=True, **batch.image_inputs)
        image.pooler_output = _doubled(image.pooler_output)
        extra = {k: torch.cat([v, v], dim=0) for k, v in batch.image_inputs.items()}
        extra.update(batch.sequence_inputs)
        out = hf.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       mm_encoder_outputs={"image": image}, use_cache=False, **extra)
        return out.last_hidden_state

    def forward(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(batch)
        # The token at position t is predicted by the hidden state at t - 1.
        predicts = batch.response_mask[:, 1:]
        rows = predicts.nonzero()[:, 0]
        selected = hidden[:, :-1][predicts]  # (N, H): only response positions
        targets = batch.input_ids[:, 1:][predicts]  # (N,)
        lm_head = unwrap(self.model).get_output_embeddings()
        pieces = []
        for start in range(0, selected.shape[0], self.chunk_tokens):
            h, t = selected[start: start + self.chunk_tokens], targets[start: start + self.chunk_tokens]
            if torch.is_grad_enabled():
                pieces.append(checkpoint(_token_logps, lm_head, h, t, use_reentrant=False))
            else:
                pieces.append(_token_logps(lm_head, h, t))
        token_logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
        sums = torch.zeros(batch.input_ids.shape[0], dtype=torch.float32, device=hidden.device)
        sums = sums.index_add(0, rows, token_logps)
        b = batch.num_pairs
        return sums[:b], sums[b:]
