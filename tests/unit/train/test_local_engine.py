"""The one-process engine: DeepSpeed's stage-0 arithmetic in plain torch, its checkpoints, its import."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from damo.config import TrainConfig, load_config
from damo.train.engine import build_engine, init_distributed, lr_lambda
from damo.train.local_engine import CheckpointLayoutError, LocalEngine, clip_grad_norm

SETTINGS = ["train.global_batch_size=4", "train.micro_batch_size=2", "train.max_grad_norm=0.05",
            "train.learning_rate=0.01", "train.weight_decay=0.1", "train.lr_schedule=linear",
            "train.warmup_ratio=0.25", "train.precision=fp32"]


def test_clipping_scales_the_global_norm_down_to_the_limit_and_leaves_a_small_one_alone() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])  # global norm 5
    assert clip_grad_norm([a, b], max_norm=1.0).item() == pytest.approx(5.0)
    assert a.grad.item() == pytest.approx(0.6, rel=1e-6) and b.grad.item() == pytest.approx(0.8, rel=1e-6)
    clip_grad_norm([a, b], max_norm=2.0)  # now norm ≈ 1 < 2: unchanged
    assert a.grad.item() == pytest.approx(0.6, rel=1e-6) and b.grad.item() == pytest.approx(0.8, rel=1e-6)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))


def _train(engine: object, steps: int) -> list[float]:
    """``steps`` optimizer steps of 2 micro-batches each on fixed data; the micro-batch losses."""
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps * 2):
        x = torch.randn(2, 6, generator=gen)
        loss = (engine(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()  # type: ignore[operator]
        engine.backward(loss)  # type: ignore[attr-defined]
        engine.step()  # type: ignore[attr-defined]
        losses.append(loss.item())
    return losses


def test_local_engine_computes_what_deepspeed_stage_0_computes() -> None:
    """Same model, data, accumulation (2), clipping (active: limit below the norm), decay and warmup:
    the losses and final weights agree with DeepSpeed's engine at stage 0 on one rank."""
    init_distributed()
    train = load_config(None, SETTINGS).train
    ours = build_engine(_model(), train, world_size=1, dtype=torch.float32, total_steps=4)
    assert isinstance(ours, LocalEngine)
    theirs = _deepspeed(train)
    ours_losses, theirs_losses = _train(ours, 4), _train(theirs, 4)
    assert ours_losses == pytest.approx(theirs_losses, rel=1e-6, abs=1e-7)
    mine, other = ours.module.state_dict(), theirs.module.state_dict()
    for name in mine:
        torch.testing.assert_close(mine[name], other[name], rtol=1e-6, atol=1e-7, msg=name)
    assert ours.get_lr() == pytest.approx(theirs.get_lr())


def _deepspeed(train: TrainConfig) -> Any:
    """DeepSpeed's engine on the same one-rank group, at stage 0 without the all-reduce."""
    import deepspeed

    from damo.train.engine import deepspeed_config

    module = _model()
    optimizer = torch.optim.AdamW(module.parameters(), lr=train.learning_rate,
                                  weight_decay=train.weight_decay, fused=True)
    schedule = lr_lambda(train, 4)
    engine, _, _, _ = deepspeed.initialize(
        model=module, optimizer=optimizer, config=deepspeed_config(train, 1, torch.float32),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule))
    engine.enable_backward_allreduce = False
    return engine


def test_without_clipping_or_accumulation_each_parameter_steps_in_backward_to_the_same_weights() -> None:
    """Optimizer-in-backward: every gradient is consumed and freed during the backward itself, and the
    weights after 4 steps equal, bit for bit, those of one AdamW stepping after the backward."""
    train = load_config(None, [*SETTINGS, "train.global_batch_size=2", "train.max_grad_norm=null"]).train
    inside = build_engine(_model(), train, world_size=1, dtype=torch.float32, total_steps=4)
    assert len(inside.optimizers) == len(list(inside.module.parameters())) > 1
    model = _model()
    after = LocalEngine(model, [torch.optim.AdamW(model.parameters(), lr=train.learning_rate,
                                                  weight_decay=train.weight_decay, fused=True)],
                        lr_lambda(train, 4), gradient_accumulation_steps=1, max_grad_norm=None)
    x = torch.randn(2, 6)
    for step in range(4):
        for engine in (inside, after):
            engine.backward(engine(x).pow(2).mean())
            if step == 0 and engine is inside:
                assert all(p.grad is None for p in inside.module.parameters())  # stepped and freed
            engine.step()
    for mine, other in zip(inside.module.parameters(), after.module.parameters(), strict=True):
        assert torch.equal(mine, other)
    assert inside.get_lr() == after.get_lr()


def test_a_checkpoint_restores_weights_optimizer_schedule_and_client_state(tmp_path: Path) -> None:
    train = load_config(None, SETTINGS).train
    first = build_engine(_model(), train, world_size=1, dtype=torch.float32, total_steps=4)
    _train(first, 2)
    first.save_checkpoint(str(tmp_path), tag="step-2", client_state={"step": 2})
    uninterrupted = copy.deepcopy(first)
    expected_losses = _train(uninterrupted, 2)

    resumed = build_engine(_model(), train, world_size=1, dtype=torch.float32, total_steps=4)
    resumed.module.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    _, client = resumed.load_checkpoint(str(tmp_path), tag="step-2")
    assert client == {"step": 2} and resumed.global_steps == 2
    assert _train(resumed, 2) == expected_losses  # bit for bit: weights, Adam moments and lr restored
    for mine, other in zip(resumed.module.state_dict().values(), uninterrupted.module.state_dict().values(),
                           strict=True):
        assert torch.equal(mine, other)
    assert [p.name for p in (tmp_path / "step-2").iterdir()] == ["engine_state.pt"]  # no partial left


def test_a_checkpoint_of_another_layout_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "step-2").mkdir()
    (tmp_path / "step-2" / "mp_rank_00_model_states.pt").write_bytes(b"")  # what DeepSpeed writes
    engine = build_engine(_model(), load_config(None, SETTINGS).train, 1, torch.float32, total_steps=4)
    with pytest.raises(CheckpointLayoutError, match="step-2.*not saved by a one-process fp32 run"):
        engine.load_checkpoint(str(tmp_path), tag="step-2")


def test_one_process_training_never_imports_deepspeed(tiny_reference_pairs: Path, tiny_llava: Path,
                                                      tmp_path: Path) -> None:
    """DeepSpeed (and the MLflow and pandas its autotuner imports) stays out of a one-process fp32 run
    while it trains. (Saving the model folder afterwards may import it: transformers' save_pretrained
    unwraps the model through accelerate, which imports DeepSpeed wherever it is installed.)"""
    code = (
        "import sys; from pathlib import Path\n"
        "import damo.train.session as session\n"
        "from damo.config import load_config\n"
        "from damo.steps.train import TrainPaths, run\n"
        "seen = []\n"
        "def fit(*args, _fit=session.fit):\n"
        "    out = _fit(*args)\n"
        "    seen.extend(m for m in sys.modules if m.split('.')[0] in {'deepspeed', 'mlflow'})\n"
        "    return out\n"
        "session.fit = fit\n"
        "config = load_config('tiny', ['train.max_steps=2', 'train.global_batch_size=2',"
        " 'train.micro_batch_size=2', 'train.loss.arm=dpo', 'train.select.benchmark=null',"
        " 'train.loss.rejected_tokens=all'])\n"
        f"result = run(config, TrainPaths(Path({str(tiny_reference_pairs)!r}), {str(tiny_llava)!r},"
        f" Path({str(tmp_path / 'out')!r})))\n"
        "assert result['layout']['train.engine'] == 'torch', result['layout']\n"
        "print(sorted(seen))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_releasing_the_optimizer_state_frees_the_moments_and_keeps_the_weights() -> None:
    """After the last checkpoint the model is saved from its weights alone; Adam's moments go first."""
    engine = build_engine(_model(), load_config(None, SETTINGS).train, world_size=1, dtype=torch.float32,
                          total_steps=4)
    _train(engine, 2)
    weights = copy.deepcopy(engine.module.state_dict())
    assert engine.optimizers[0].state  # the moments exist while training
    engine.release_optimizer_state()
    assert not engine.optimizers[0].state
    assert all(p.grad is None for p in engine.module.parameters())
    for name, value in engine.module.state_dict().items():
        assert torch.equal(value, weights[name])
