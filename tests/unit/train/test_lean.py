"""Activation-lean MLP and RMSNorm forwards: the stock values, the stock gradients, fewer saved bytes."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm

from damo.train.lean import make_lean

HIDDEN, INTERMEDIATE, TOKENS = 16, 32, 6


def _config() -> LlamaConfig:
    return LlamaConfig(vocab_size=50, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32)


def saved_activation_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd saves for the backward in ``module(x)``, parameters excluded, each storage once."""
    params = {p.data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    return sum(seen.values())


def _pair(module: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    lean = copy.deepcopy(module)
    make_lean(lean)
    return module, lean


@pytest.mark.parametrize("block", ["mlp", "norm"])
def test_lean_blocks_give_the_stock_values_and_gradients(block: str) -> None:
    torch.manual_seed(0)
    module = LlamaMLP(_config()) if block == "mlp" else LlamaRMSNorm(HIDDEN, eps=1e-6)
    if block == "norm":
        torch.nn.init.normal_(module.weight)
    stock, lean = _pair(module)
    x = torch.randn(2, TOKENS, HIDDEN)
    xs, xl = x.clone().requires_grad_(), x.clone().requires_grad_()
    ys, yl = stock(xs), lean(xl)
    assert torch.equal(ys, yl)  # forward: the same ops in the same order
    upstream = torch.randn_like(ys)
    ys.backward(upstream)
    yl.backward(upstream)
    torch.testing.assert_close(xl.grad, xs.grad, rtol=1e-5, atol=1e-6)
    for (name, ps), pl in zip(stock.named_parameters(), lean.parameters(), strict=True):
        torch.testing.assert_close(pl.grad, ps.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_lean_mlp_saves_half_the_intermediate_activations() -> None:
    """Stock: gate, silu(gate), up and their product (4 × intermediate per token) plus its input;
    lean: gate and up (2 × intermediate) plus the input."""
    stock, lean = _pair(LlamaMLP(_config()))
    x = torch.randn(2, TOKENS, HIDDEN, requires_grad=True)
    per_token = 4 * 2 * TOKENS  # fp32 bytes × tokens
    assert saved_activation_bytes(stock, x) == per_token * (4 * INTERMEDIATE + HIDDEN)
    assert saved_activation_bytes(lean, x) == per_token * (2 * INTERMEDIATE + HIDDEN)


def test_lean_rmsnorm_saves_the_input_and_one_number_per_token() -> None:
    stock, lean = _pair(LlamaRMSNorm(HIDDEN))
    x = torch.randn(2, TOKENS, HIDDEN, requires_grad=True)
    per_token = 4 * 2 * TOKENS
    assert saved_activation_bytes(stock, x) > saved_activation_bytes(lean, x)
    assert saved_activation_bytes(lean, x) == per_token * (HIDDEN + 1)


def test_a_whole_decoder_trains_to_the_same_gradients_and_only_supported_blocks_switch() -> None:
    torch.manual_seed(0)
    stock = LlamaForCausalLM(_config())
    lean = copy.deepcopy(stock)
    switched = make_lean(lean)
    assert switched == {"LlamaMLP": 2, "LlamaRMSNorm": 5}  # 2 layers × (2 norms + MLP) + final norm
    ids = torch.randint(0, 50, (2, 12))
    assert torch.equal(stock(ids).logits, lean(ids).logits)
    stock(ids, labels=ids).loss.backward()
    lean(ids, labels=ids).loss.backward()
    for (name, ps), pl in zip(stock.named_parameters(), lean.parameters(), strict=True):
        torch.testing.assert_close(pl.grad, ps.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_biased_or_wrapped_projection_keeps_its_stock_forward() -> None:
    mlp = LlamaMLP(_config().__class__(**{**_config().to_dict(), "mlp_bias": True}))
    assert make_lean(mlp) == {}
