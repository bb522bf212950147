"""Summed response log-probs of chosen and rejected, with each pair's image encoded once.

Every peer (TRL, the authors' LLaVA code) runs the vision tower twice per pair, once for chosen and
once for rejected. Here the image features are computed once per pair and handed to the language
model for both sequences through transformers' ``mm_encoder_outputs`` (the same hook every
image-text-to-text model of transformers 5 offers), and the LM head runs only at response positions,
in chunks, each recomputed in backward (activation checkpointing), so that full-vocabulary fp32 logits
never exist for the whole batch at once.

The prompt once, too (:meth:`PairLogps.shared_prompt_hidden`): chosen and rejected share their prompt
(image tokens + question), which is most of the tokens (LLaVA-1.5: 576 image tokens; the tiny world:
~77%). The language model runs the B prompts once, left-padded so that each ends at the last column,
keeping their keys/values (a KV cache that stays in the autograd graph), then the 2B responses
attend to their pair's prompt through that cache. Causal attention makes this the same computation
as the full sequences: a prompt token never sees the response. Used where it is exact and available
(:func:`shares_prompt`): no per-token extras over the whole sequence (Qwen-VL's M-RoPE positions
depend on them), and no activation checkpointing while gradients are on (transformers then drops
the cache). The training layout may still ask for full sequences: stepping the optimizer inside the
backward frees nothing while each weight, run once for the prompts and once for the responses, waits
for its second gradient contribution (:class:`damo.train.engine.Plan`).
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


def shares_prompt(hf: Any, batch: PairBatch) -> bool:
    """Whether the prompt-once path is exact here (see the module doc); else full sequences."""
    checkpointing = torch.is_grad_enabled() and getattr(hf, "is_activation_checkpointing", False)
    return not batch.sequence_inputs and not checkpointing


def _split(batch: PairBatch, pad: int) -> tuple[torch.Tensor, ...]:
    """The (2B, T) right-padded pairs as B left-padded prompts (B, P) and 2B right-padded responses
    (2B, R): prompt ids and mask, response ids, their attention mask and the mask of the tokens whose
    log-probs are summed (the batch's response mask: a rejected answer may be summed only through its
    fork), each response's prompt length (2B,)."""
    starts = batch.response_mask.int().argmax(dim=1)  # the first response token = the prompt length
    ends = batch.attention_mask.sum(dim=1)
    b = batch.num_pairs
    width, length = int(starts[:b].max()), int((ends - starts).max())
    ids = batch.input_ids
    prompt_ids = ids.new_full((b, width), pad)
    prompt_mask = torch.zeros_like(prompt_ids)
    response_ids = ids.new_full((2 * b, length), pad)
    response_mask = torch.zeros_like(response_ids)
    summed = torch.zeros_like(response_ids, dtype=torch.bool)
    for i in range(2 * b):
        start, end = int(starts[i]), int(ends[i])
        if i < b:
            prompt_ids[i, width - start:] = ids[i, :start]
            prompt_mask[i, width - start:] = 1
        response_ids[i, : end - start] = ids[i, start:end]
        response_mask[i, : end - start] = 1
        summed[i, : end - start] = batch.response_mask[i, start:end]
    return prompt_ids, prompt_mask, response_ids, response_mask, summed, starts


class PairLogps(nn.Module):
    """``forward(batch) -> (chosen_logps, rejected_logps)``, each (B,) fp32, summed over response tokens.

    Holds the HF model as ``self.model`` so that DeepSpeed wraps (and ZeRO-3 partitions) it whole.
    ``chunk_tokens`` bounds how many response positions get full-vocabulary logits at once.
    ``prompt_once`` False: always full sequences, even where the prompt-once path is exact (the
    training layout decides, :class:`damo.train.engine.Plan`).
    """

    def __init__(self, model: nn.Module, chunk_tokens: int, prompt_once: bool = True):
        super().__init__()
        self.model = model
        self.chunk_tokens = chunk_tokens
        self.prompt_once = prompt_once

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

    def shared_prompt_hidden(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prompt-once path: (2B, R, H) hidden states predicting each response token, the (2B, R)
        response ids and the mask of those whose log-probs are summed. Response token r is predicted
        by the state before it: the prompt's last one for r = 0, the response's own at r - 1 after."""
        hf = unwrap(self.model)
        pad = hf.config.get_text_config().pad_token_id
        split = _split(batch, 0 if pad is None else pad)
        prompt_ids, prompt_mask, response_ids, response_mask, summed, starts = split
        pixel_values = batch.pixel_values.to(dtype=next(hf.parameters()).dtype)
        image = hf.get_image_features(pixel_values=pixel_values, return_dict=True, **batch.image_inputs)
        positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        prompt = hf.model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                          mm_encoder_outputs={"image": image}, use_cache=True, **batch.image_inputs)
        cache = prompt.cache
        if cache is None:
            raise RuntimeError(f"{type(hf).__name__} returned no KV cache for the prompts; the prompt-once "
                               "path cannot run (shares_prompt should have refused it)")
        b = batch.num_pairs
        pairs = torch.arange(b, device=prompt_ids.device)
        cache.batch_select_indices(torch.cat([pairs, pairs]))  # chosen rows, then rejected rows
        response_positions = starts[:, None] + torch.arange(response_ids.shape[1], device=starts.device)
        mask = torch.cat([prompt_mask.repeat(2, 1), response_mask], dim=1)  # (2B, P + R)
        out = hf.model(input_ids=response_ids, attention_mask=mask,
                       position_ids=response_positions, cache=cache, use_cache=True)
        last_prompt = prompt.last_hidden_state[:, -1:].repeat(2, 1, 1)
        hidden = torch.cat([last_prompt, out.last_hidden_state[:, :-1]], dim=1)
        return hidden, response_ids, summed

    def forward(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prompt_once and shares_prompt(unwrap(self.model), batch):
            hidden, ids, predicts = self.shared_prompt_hidden(batch)
            selected, targets = hidden[predicts], ids[predicts]
        else:
            full = self.hidden_states(batch)
            # The token at position t is predicted by the hidden state at t - 1.
            predicts = batch.response_mask[:, 1:]
            selected = full[:, :-1][predicts]  # (N, H): only response positions
            targets = batch.input_ids[:, 1:][predicts]  # (N,)
            hidden = full
        rows = predicts.nonzero()[:, 0]
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
