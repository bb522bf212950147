"""damo's trainer against TRL's DPOTrainer on one GPU, at LLaVA-1.5 shape with random bf16 weights.

Usage (a machine with a CUDA GPU; on a CPU-only machine it refuses)::

    python benchmarks/train_vs_trl_gpu.py [--steps 12] [--batch 8] [--rounds 2] [--text-layers 22]
                                          [--trl-backend deepspeed|fsdp] [--peak-tflops 989]

Model: a LLaVA-1.5-shaped ``LlavaForConditionalGeneration`` with random weights in bf16: the CLIP
ViT-L/14-336 tower (width 1024, 24 layers, 576 patches, feature layer -2), LLaVA's 2-layer projector,
and a ~1.1B Llama (width 2048, ``--text-layers`` 22, 32 heads, 4 KV heads, MLP 5632, vocabulary
32064). Pairs, images (336 px) and processor come from a quick tiny world built at that image size
(its word-level tokenizer emits ids < 400; the embedding and LM head keep the full 32064 rows, so
their cost is LLaVA's).

Sides, each in its own process (rounds alternating, as in ``train_vs_trl.py``, whose side functions
this script reuses): damo's ``damo.steps.train.run`` (plain-DPO arm, bf16, one process → its
:func:`damo.train.engine.plan` layout, reference log-probs precomputed by ``damo reference``), and
TRL's ``DPOTrainer`` in bf16 with the reference model TRL builds, under DeepSpeed ZeRO-2 (a ``deepspeed``
config dict, as TRL's DeepSpeed integration page documents) or FSDP (``fsdp="full_shard"``).

Reported per side: steady pairs/s, peak GPU memory (``torch.cuda.max_memory_allocated`` of that
process, read when its last step ends) and model-FLOPs utilisation: MFU = (6 × trainable parameters ×
text tokens of the chosen and rejected sequences + 2 × vision-tower parameters × patches × pairs) per
step / (step time × the GPU's peak dense bf16 FLOP/s). The numerator is the same for both sides (the
work a DPO step needs, not what each side happens to compute), so the MFU ratio is the speed ratio.
Ends with ``ratio pairs_per_s=<damo/TRL> peak_memory=<damo/TRL>``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_vs_trl as cpu

# Dense bf16 peak FLOP/s by device name (vendor data sheets, SXM parts); --peak-tflops overrides.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0}
IMAGE_SIZE, PATCH = 336, 14
WORLD = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=64",
         "tiny_world.eval_images=4", f"tiny_world.image_size={IMAGE_SIZE}", f"tiny_world.patch_size={PATCH}",
         "tiny_world.clip_patch_size=48")
ZERO2 = {"zero_optimization": {"stage": 2, "overlap_comm": False, "contiguous_gradients": True},
         "bf16": {"enabled": True}, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
         "gradient_accumulation_steps": "auto", "gradient_clipping": "auto"}


def refuse_without_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("train_vs_trl_gpu.py needs a CUDA GPU and none is visible here; on a CPU run "
                         "benchmarks/train_vs_trl.py (the CPU size sweep) instead")


def llava15_config(small: Any, text_layers: int) -> Any:
    """LLaVA-1.5's shape around the small world's token ids (image token, pad, BOS, EOS)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=1024,
                              intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              projection_dim=768)
    text = small.text_config
    llama = LlamaConfig(vocab_size=32064, hidden_size=2048, intermediate_size=5632,
                        num_hidden_layers=text_layers, num_attention_heads=32, num_key_value_heads=4,
                        max_position_embeddings=4096,
                        pad_token_id=text.pad_token_id, bos_token_id=text.bos_token_id,
                        eos_token_id=text.eos_token_id)
    return LlavaConfig(vision_config=vision, text_config=llama, image_token_index=small.image_token_index,
                       image_seq_length=(IMAGE_SIZE // PATCH) ** 2, vision_feature_select_strategy="default",
                       vision_feature_layer=-2, projector_hidden_act="gelu")


def prepare(work: Path, batch: int, text_layers: int) -> dict[str, float]:
    """World at 336 px → a random bf16 LLaVA-1.5-shaped model folder → pairs with reference log-probs."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from damo.config import load_config
    from damo.data.dataset import DatasetWriter, PreferenceDataset
    from damo.models import load_processor
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as reference
    from damo.tinyworld import build
    from damo.train.batch import collate_pairs

    build(load_config("tiny", WORLD), work / "world")
    small_dir, big_dir = work / "world" / "policy", work / "big"
    with torch.device("cuda"):
        config = llava15_config(LlavaConfig.from_pretrained(small_dir), text_layers)
        model = LlavaForConditionalGeneration(config)
    model.to(torch.bfloat16).save_pretrained(big_dir)
    processor = load_processor(small_dir)
    processor.save_pretrained(big_dir)
    rows = PreferenceDataset(work / "world" / "data").read(split="train").slice(0, batch)
    writer = DatasetWriter(work / "pairs", schema=rows.schema)
    writer.write_table(rows)
    writer.close()
    reference(load_config("tiny", [*cpu.PAPER_LOSS, "reference.precision=bf16"]),
              ReferencePaths(work / "pairs", str(big_dir), work / "ref"))
    tokens = collate_pairs(processor, rows.to_pylist()).num_tokens
    vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    trainable = sum(p.numel() for p in model.parameters()) - vision
    del model
    return {"flops_per_step": 6.0 * trainable * tokens + 2.0 * vision * (IMAGE_SIZE // PATCH) ** 2 * batch,
            "trainable": trainable, "vision": vision, "tokens": tokens}


def child(side: str, work: Path, args: argparse.Namespace) -> None:
    import torch

    torch.cuda.reset_peak_memory_stats()
    cpu.StepClock.peak_reader = staticmethod(torch.cuda.max_memory_allocated)
    out, data, model = work / f"out-{side}", work / "ref", work / "big"
    if side == "ours":
        overrides = ("train.precision=bf16", f"train.gradient_checkpointing={args.gradient_checkpointing}")
        result = cpu.run_ours(data, model, out, args.steps, args.batch, cpu.CLIP, overrides)
    else:
        # HF's Trainer sets DeepSpeed/FSDP up through torch.distributed even on one device.
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT", "29533"))
        backend = {"deepspeed": {"deepspeed": ZERO2}, "fsdp": {"fsdp": "full_shard"}}[args.trl_backend]
        options = {"use_cpu": False, "bf16": True, "gradient_checkpointing": args.gradient_checkpointing,
                   **backend}
        result = cpu.run_trl(data, model, out, args.steps, args.batch, cpu.CLIP, options)
    (work / f"{side}.json").write_text(json.dumps(result))


def peak_flops(args: argparse.Namespace) -> float:
    import torch

    if args.peak_tflops:
        return float(args.peak_tflops) * 1e12
    name = torch.cuda.get_device_name()
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    raise SystemExit(f"no peak bf16 FLOP/s known for {name!r}: pass --peak-tflops")


def side_command(side: str, work: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--side", side, "--work", str(work), "--steps", str(args.steps),
            "--batch", str(args.batch), "--text-layers", str(args.text_layers),
            "--trl-backend", args.trl_backend, f"--gradient-checkpointing={args.gradient_checkpointing}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--text-layers", type=int, default=22)
    parser.add_argument("--trl-backend", choices=["deepspeed", "fsdp"], default="deepspeed")
    parser.add_argument("--gradient-checkpointing", choices=["true", "false"], default="false")
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    refuse_without_gpu()
    if args.side:
        child(args.side, args.work, args)
        return
    peak = peak_flops(args)
    work = Path(tempfile.mkdtemp(prefix="damo-vs-trl-gpu-"))
    try:
        shape = prepare(work, args.batch, args.text_layers)
        rounds: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
        for r in range(args.rounds):
            for side in ("ours", "trl") if r % 2 == 0 else ("trl", "ours"):
                shutil.rmtree(work / f"out-{side}", ignore_errors=True)
                subprocess.run(side_command(side, work, args), check=True)
                rounds[side].append(json.loads((work / f"{side}.json").read_text()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = {s: max(cpu.steady(x["step_seconds"], args.batch) for x in rs) for s, rs in rounds.items()}
    memory = {s: max(x["peak_bytes"] for x in rs) for s, rs in rounds.items()}
    print(f"\nLLaVA-1.5 shape (ViT-L/14-336 + {shape['trainable'] / 1e9:.2f}B trainable), bf16, "
          f"{args.batch} pairs/step, {shape['tokens']} tokens/step, TRL with {args.trl_backend}, "
          f"best of {args.rounds} rounds")
    print(f"{'':10}{'pairs/s':>10}{'peak GiB':>10}{'MFU':>8}")
    for side, label in (("ours", "damo"), ("trl", "TRL")):
        mfu = shape["flops_per_step"] * rate[side] / args.batch / peak
        print(f"{label:10}{rate[side]:>10.2f}{memory[side] / 2**30:>10.2f}{mfu:>8.1%}")
    first = {s: statistics.fmean([x["first_loss"] for x in rs]) for s, rs in rounds.items()}
    print(f"first loss: damo {first['ours']:.4f}, TRL {first['trl']:.4f}")
    ratio_memory = memory["ours"] / memory["trl"]
    print(f"ratio pairs_per_s={rate['ours'] / rate['trl']:.3f} peak_memory={ratio_memory:.3f}")


if __name__ == "__main__":
    main()
