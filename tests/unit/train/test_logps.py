"""Summed response log-probs: equal to the plain full-forward computation, image encoded once per pair."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from damo.data.dataset import PreferenceDataset
from damo.models import load_model, load_processor, vision_tower
from damo.train.batch import PairBatch, collate_pairs
from damo.train.logps import PairLogps, shares_prompt


def naive_logps(model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
    """What every peer does: the image fed with each sequence, full-vocabulary logits everywhere."""
    pixel_values = torch.cat([batch.pixel_values, batch.pixel_values])
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   pixel_values=pixel_values).logits
    token = logits[:, :-1].log_softmax(-1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    return (token * batch.response_mask[:, 1:]).sum(-1)


@pytest.fixture()
def setup(tiny_llava: Path, tiny_pairs: Path) -> tuple[torch.nn.Module, PairBatch]:
    torch.manual_seed(0)
    model = load_model(tiny_llava, "fp32")
    rows = list(PreferenceDataset(tiny_pairs).iter_rows())[:4]
    return model, collate_pairs(load_processor(tiny_llava), rows)


@pytest.mark.parametrize("chunk_tokens", [1, 7, 4096])
def test_logps_equal_the_full_forward_for_any_chunk_size(setup, chunk_tokens: int) -> None:
    model, batch = setup
    chosen, rejected = PairLogps(model, chunk_tokens)(batch)
    expected = naive_logps(model, batch)
    torch.testing.assert_close(torch.cat([chosen, rejected]), expected, atol=1e-4, rtol=1e-5)
    assert chosen.shape == (batch.num_pairs,)


def test_gradients_equal_the_full_forward(setup) -> None:
    model, batch = setup
    chosen, rejected = PairLogps(model, chunk_tokens=5)(batch)
    (chosen.sum() - 2 * rejected.sum()).backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    expected = naive_logps(model, batch)
    b = batch.num_pairs
    (expected[:b].sum() - 2 * expected[b:].sum()).backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(ours[name], p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_the_vision_tower_sees_each_pair_image_once(setup) -> None:
    model, batch = setup
    seen: list[int] = []
    handle = vision_tower(model).register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        PairLogps(model, chunk_tokens=16)(batch)
    finally:
        handle.remove()
    assert seen == [batch.num_pairs]  # B images for 2B sequences


def test_the_language_model_runs_each_pair_prompt_once(setup) -> None:
    model, batch = setup
    fed: list[tuple[int, ...]] = []
    embeddings = model.get_input_embeddings()
    handle = embeddings.register_forward_hook(lambda m, args, out: fed.append(args[0].shape))
    try:
        PairLogps(model, chunk_tokens=16)(batch)
    finally:
        handle.remove()
    b = batch.num_pairs
    prompts, responses = fed
    assert prompts[0] == b and responses[0] == 2 * b  # B prompts, then 2B responses attending to them
    fed_positions = prompts[0] * prompts[1] + responses[0] * responses[1]
    assert fed_positions < 0.75 * batch.input_ids.numel()  # the prompts are most of the full sequences


def test_without_prompt_once_each_weight_is_used_once_and_the_values_are_the_same(setup) -> None:
    model, batch = setup
    q_proj = model.model.language_model.layers[0].self_attn.q_proj
    calls: list[int] = []
    handle = q_proj.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        full = torch.cat(PairLogps(model, chunk_tokens=16, prompt_once=False)(batch))
        calls_full = list(calls)
        calls.clear()
        shared = torch.cat(PairLogps(model, chunk_tokens=16)(batch))
    finally:
        handle.remove()
    assert calls_full == [2 * batch.num_pairs]  # one pass: backward reaches the weight once
    assert calls == [batch.num_pairs, 2 * batch.num_pairs]  # prompts, then responses: twice
    torch.testing.assert_close(full, shared, atol=1e-4, rtol=1e-5)


def test_activation_checkpointing_keeps_the_full_sequences_and_their_values(setup) -> None:
    model, batch = setup
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    assert not shares_prompt(model, batch)  # transformers drops the KV cache under checkpointing
    chosen, rejected = PairLogps(model, chunk_tokens=7)(batch)
    torch.testing.assert_close(torch.cat([chosen, rejected]), naive_logps(model, batch), atol=1e-4, rtol=1e-5)
    with torch.no_grad():
        assert shares_prompt(model, batch)  # no backward to replay: the prompt-once path is exact


def test_logits_are_computed_only_at_response_positions(setup) -> None:
    model, batch = setup
    rows_seen: list[int] = []
    handle = model.get_output_embeddings().register_forward_hook(
        lambda m, args, out: rows_seen.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            PairLogps(model, chunk_tokens=10)(batch)
    finally:
        handle.remove()
    responses = int(batch.response_mask[:, 1:].sum())
    assert sum(rows_seen) == responses
    assert max(rows_seen) <= 10
    assert responses < batch.attention_mask.sum() / 2  # the prompt (with image tokens) dominates


def test_another_architecture_qwen2_vl_gets_the_same_treatment(tmp_path: Path, tiny_pairs: Path) -> None:
    from tests.unit.train.tiny import build_tiny_qwen2vl

    folder = build_tiny_qwen2vl(tmp_path / "qwen2vl")
    model = load_model(folder, "fp32")
    batch = collate_pairs(load_processor(folder), list(PreferenceDataset(tiny_pairs).iter_rows())[:3])
    assert "mm_token_type_ids" in batch.sequence_inputs  # M-RoPE needs it over the whole sequence
    assert not shares_prompt(model, batch)  # so its positions are computed over full sequences
    seen: list[int] = []
    handle = vision_tower(model).register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        chosen, rejected = PairLogps(model, chunk_tokens=7)(batch)
    finally:
        handle.remove()
    assert seen == [batch.pixel_values.shape[0]]  # the patches of B images, once
    extra = {k: torch.cat([v, v]) for k, v in batch.image_inputs.items()}
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   pixel_values=torch.cat([batch.pixel_values, batch.pixel_values]),
                   **extra, **batch.sequence_inputs).logits
    token = logits[:, :-1].log_softmax(-1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    expected = (token * batch.response_mask[:, 1:]).sum(-1)
    torch.testing.assert_close(torch.cat([chosen, rejected]), expected, atol=1e-4, rtol=1e-5)


def test_a_rejected_answer_summed_through_its_fork_equals_the_full_forward_over_those_tokens(
        tiny_llava: Path, tiny_pairs: Path) -> None:
    model = load_model(tiny_llava, "fp32")
    rows = list(PreferenceDataset(tiny_pairs).iter_rows())[:4]
    processor = load_processor(tiny_llava)
    batch = collate_pairs(processor, rows, "through_fork")
    assert shares_prompt(model, batch)  # the prompt-once path, which splits the responses itself
    with torch.no_grad():
        chosen, rejected = PairLogps(model, 7)(batch)
        expected = naive_logps(model, batch)  # sums exactly the response-mask tokens
        torch.testing.assert_close(torch.cat([chosen, rejected]), expected, atol=1e-4, rtol=1e-5)
        whole_chosen, whole_rejected = PairLogps(model, 7)(collate_pairs(processor, rows))
    torch.testing.assert_close(chosen, whole_chosen)
    # Fewer (negative) token log-probs summed: never lower, and lower wherever tokens follow the fork.
    assert (rejected >= whole_rejected).all() and (rejected > whole_rejected).any()
