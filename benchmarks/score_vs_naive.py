"""Pairs/s of ``damo score`` against a naive loop that scores each pair alone, same model, one run.

The naive peer is the obvious script: open_clip's model as loaded (float32), ``torch.no_grad``, and
for each pair: decode its image, encode it (batch of one), encode that pair's sub-sentences padded
to the context length, softmax, sum. Ours is ``damo score`` with its defaults: DataLoader workers
decode and split, each distinct image is encoded once per run (RLAIF-V's LLaVA-1.5 part has ~1.7
pairs per image, and the synthetic set below has the same ratio), all sub-sentences of a batch go in
length-sorted chunks cut to their longest text, and the towers run in half precision where the
hardware has it (fp16 on GPU, bf16 on CPUs with AVX512-BF16/AMX). A second run of ours in float32
splits the gain into engineering and precision; the deltas' agreement with the naive float32 loop is
printed. The same weights in every run; model loading is not timed. Every sentence of the synthetic
answers is unique, so the sub-sentence cache gains nothing here.

    .venv/bin/python benchmarks/score_vs_naive.py                        # ViT-B-32, random weights
    .venv/bin/python benchmarks/score_vs_naive.py --model tiny           # the tiny world's CLIP size
    .venv/bin/python benchmarks/score_vs_naive.py --model ViT-L-14-336 --pairs 2048 --batch-size 64  # GPU

Ends with ``ratio pairs_per_s=<ours/naive>``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import rows as synthetic_rows

from damo.config import DamoConfig, load_config
from damo.data.dataset import DatasetWriter, PreferenceDataset
from damo.hardness.clip import LoadedClip, load_clip
from damo.hardness.splitter import make_splitter
from damo.steps.score import ScorePaths, run

PAIRS_PER_IMAGE = 22_000 / 13_000  # the LLaVA-1.5 part of RLAIF-V (DAMA.md)


def write_dataset(folder: Path, n: int) -> Path:
    writer = DatasetWriter(folder, shard_rows=512)
    for i, row in enumerate(synthetic_rows(n, distinct_images=max(1, round(n / PAIRS_PER_IMAGE)))):
        writer.write(
            {
                "id": f"b{i:06d}",
                "split": "train",
                "image": row["image"]["bytes"],
                "question": row["question"],
                "chosen": row["chosen"],
                "rejected": row["rejected"],
                "source": "benchmark",
            }
        )
    writer.close()
    return folder


def tiny_clip_folder(folder: Path) -> Path:
    """A random CLIP shaped like the tiny world's (its own config code), in the hf-hub layout."""
    from damo.config import TinyWorldConfig
    from damo.tinyworld.clip import build_clip, save_clip

    cfg = TinyWorldConfig(clip_context_length=77)
    model, _, _ = build_clip(cfg, seed=0)
    save_clip(model, cfg, folder)
    return folder


@torch.no_grad()
def naive(clip: LoadedClip, config: DamoConfig, data: Path) -> tuple[float, np.ndarray]:
    """Score each pair alone; returns (pairs/s, deltas)."""
    split = make_splitter(config.score.splitter, clip.tokenizer)
    model, deltas = clip.model, []
    start = time.perf_counter()
    for row in PreferenceDataset(data).iter_rows(["image", "chosen", "rejected"]):
        pixels = clip.preprocess(Image.open(io.BytesIO(row["image"])).convert("RGB"))[None]
        image = model.encode_image(pixels.to(clip.device, clip.dtype), normalize=True)
        chosen, rejected = split(row["chosen"]), split(row["rejected"])
        texts = model.encode_text(clip.tokenizer(chosen + rejected).to(clip.device), normalize=True)
        scores = torch.softmax(model.logit_scale.exp().float() * (texts.float() @ image[0].float()), dim=0)
        deltas.append(float(scores[: len(chosen)].sum() - scores[len(chosen) :].sum()))
    if clip.device.type == "cuda":
        torch.cuda.synchronize()
    return len(deltas) / (time.perf_counter() - start), np.asarray(deltas)


def ours(config: DamoConfig, data: Path, out: Path) -> tuple[dict[str, Any], np.ndarray]:
    torch.manual_seed(0)  # a named model with random weights: the same weights in every run
    result = run(config, ScorePaths(data, out))
    return result, np.asarray([r["delta"] for r in PreferenceDataset(out).iter_rows(["delta"])])


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    rank = np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]
    return f"max |Δδ| {np.abs(a - b).max():.2e}, mean |Δδ| {np.abs(a - b).mean():.2e}, Spearman {rank:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="ViT-B-32", help="'tiny' or an open_clip model name (random weights)"
    )
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (all runs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # a shared CPU box: avoid oversubscribing the cores
    with tempfile.TemporaryDirectory(prefix="damo-bench-score-") as tmp:
        root = Path(tmp)
        model = str(tiny_clip_folder(root / "clip")) if args.model == "tiny" else args.model
        overrides = [
            f"score.clip_model={model}",
            "score.clip_pretrained=null",
            f"score.batch_size={args.batch_size}",
            f"score.num_workers={args.workers}",
        ]
        data = write_dataset(root / "data", args.pairs)
        fast, fast_deltas = ours(load_config(None, overrides), data, root / "ours")
        fp32_config = load_config(None, [*overrides, "score.precision=fp32"])
        fp32, fp32_deltas = ours(fp32_config, data, root / "ours-fp32")
        torch.manual_seed(0)
        clip = load_clip(fp32_config.score)
        if clip.device.type == "cuda":
            naive(clip, fp32_config, data)  # warm-up: kernels, allocator
        naive_rate, naive_deltas = naive(clip, fp32_config, data)
        images = len({r["image"] for r in PreferenceDataset(data).iter_rows(["image"])})
        print(
            f"model={args.model} device={clip.device} pairs={args.pairs} images={images} "
            f"batch={args.batch_size} workers={args.workers} threads={torch.get_num_threads()} "
            f"sub_sentences/pair={fast['sub_sentences_per_pair']:.1f}"
        )
        fast_vs, fp32_vs = agreement(fast_deltas, naive_deltas), agreement(fp32_deltas, naive_deltas)
        print(f"ours ({fast['dtype']}): {fast['pairs_per_s']:.1f} pairs/s   vs naive: {fast_vs}")
        print(f"ours (float32):  {fp32['pairs_per_s']:.1f} pairs/s   vs naive: {fp32_vs}")
        print(f"naive (float32): {naive_rate:.1f} pairs/s")
        print(f"ratio float32_only={fp32['pairs_per_s'] / naive_rate:.2f}")
        print(f"ratio pairs_per_s={fast['pairs_per_s'] / naive_rate:.2f}")


if __name__ == "__main__":
    main()
