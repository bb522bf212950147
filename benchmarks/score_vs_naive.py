"""Pairs/s of ``damo score`` against a naive loop that scores each pair alone, same model, one run.

The naive peer is the obvious script: for each pair, decode its image, encode it (batch of one),
split and encode that pair's sub-sentences, softmax, sum. Ours: DataLoader workers decode and split,
each batch encodes its images once and all its sub-sentences in one text batch, inference_mode,
half precision on GPU. Both use the same loaded model on the same device; model loading is not timed.

    .venv/bin/python benchmarks/score_vs_naive.py                       # tiny-world-sized CLIP, CPU
    .venv/bin/python benchmarks/score_vs_naive.py --model ViT-B-32      # random weights
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

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import rows as synthetic_rows

from damo.config import DamoConfig, load_config
from damo.data.dataset import DatasetWriter
from damo.hardness.clip import LoadedClip, load_clip
from damo.hardness.splitter import make_splitter
from damo.steps.score import ScorePaths, run


def write_dataset(folder: Path, n: int) -> Path:
    writer = DatasetWriter(folder, shard_rows=512)
    for i, row in enumerate(synthetic_rows(n, distinct_images=min(n, 256))):
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


@torch.inference_mode()
def naive(clip: LoadedClip, config: DamoConfig, data: Path) -> tuple[float, list[float]]:
    """Score each pair alone; returns (pairs/s, deltas)."""
    from damo.data.dataset import PreferenceDataset

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
    return len(deltas) / (time.perf_counter() - start), deltas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' or an open_clip model name (random weights)")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (both runs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # a shared CPU box: avoid oversubscribing the cores
    with tempfile.TemporaryDirectory(prefix="damo-bench-score-") as tmp:
        root = Path(tmp)
        model = str(tiny_clip_folder(root / "clip")) if args.model == "tiny" else args.model
        config = load_config(
            None,
            [
                f"score.clip_model={model}",
                "score.clip_pretrained=null",
                f"score.batch_size={args.batch_size}",
                f"score.num_workers={args.workers}",
            ],
        )
        data = write_dataset(root / "data", args.pairs)
        torch.manual_seed(0)  # a named model with random weights: the same weights in both runs
        ours = run(config, ScorePaths(data, root / "scored"))
        torch.manual_seed(0)
        clip = load_clip(config.score)
        naive(clip, config, data) if clip.device.type != "cpu" else None  # GPU warm-up (kernels, allocator)
        naive_rate, naive_deltas = naive(clip, config, data)
        from damo.data.dataset import PreferenceDataset

        our_deltas = [r["delta"] for r in PreferenceDataset(root / "scored").iter_rows(["delta"])]
        gap = max(abs(a - b) for a, b in zip(our_deltas, naive_deltas))
        print(
            f"model={args.model} device={clip.device} dtype={clip.dtype} pairs={args.pairs} "
            f"batch={args.batch_size} workers={args.workers} threads={torch.get_num_threads()} "
            f"sub_sentences/pair={ours['sub_sentences_per_pair']:.1f}"
        )
        print(f"ours:  {ours['pairs_per_s']:.1f} pairs/s")
        print(f"naive: {naive_rate:.1f} pairs/s   (max |delta ours - naive| = {gap:.2e})")
        print(f"ratio pairs_per_s={ours['pairs_per_s'] / naive_rate:.2f}")


if __name__ == "__main__":
    main()
