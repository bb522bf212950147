"""``build_here(config, out)``: the whole tiny world in one folder, deterministic by ``config.seed``.

Callers use :func:`damo.tinyworld.build` (:mod:`damo.tinyworld.pinned`), which runs this in a child
process with the CPU kernels pinned, so that two machines build the same bytes.

Layout (DESIGN.md, "tiny world"): ``data/`` (preference dataset), ``policy/`` (tiny LLaVA HF folder),
``clip/`` (open_clip hf-hub layout), ``benchmark/`` (held-out images + ``tiny_world.jsonl`` +
``vocabulary.json``), ``selection/`` (a second held-out set in that layout, to choose a checkpoint
on: ``train.select``), ``report.json`` (measured quality, build time) and ``world.json``.
With ``sft_steps=0`` and ``clip_steps=0`` nothing is trained and it takes a few seconds.
Order: pairs in memory → benchmark → SFT policy → CLIP → every pair's ``clip_margin``, ``sft_margin``
and measured ``hardness`` (:mod:`damo.tinyworld.hardness`) → the dataset is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import damo
from damo.config import DamoConfig, TinyWorldConfig
from damo.data.dataset import DatasetWriter
from damo.tinyworld import clip, hardness, policy, quality
from damo.tinyworld.pairs import PAIR_SCHEMA, noisy_caption, pair_rows, scenes, true_and_hallucinating
from damo.tinyworld.tokenizer import build_processor, image_seq_length
from damo.tinyworld.vocab import QUESTIONS, WELL_FORMED, Scene, describe, vocabulary

log = logging.getLogger(__name__)
# 2: hardness measured per pair, label noise, finer grid; 3: omission pairs; 4: chosen noise;
# 5: the selection images; 6: shape_size and the shape-noise stage (options)
WORLD_VERSION = 6
# The trained weights depend on torch's intra-op thread count (reductions split differently): one
# seed built with 1 and with 2 threads gives two different SFT policies, and DPO from each lands
# ~0.02 apart in extra-object rate (benchmarks/tiny_effect.md). The build pins the count (1 is
# available everywhere); the kernels it runs are pinned too (damo.tinyworld.pinned).
BUILD_THREADS = 1


@dataclass
class Split:
    """Scenes with their PNG bytes (and, for pairs, the rows)."""

    scenes: list[Scene]
    images: list[bytes]
    rows: list[dict[str, Any]]

    def pil(self) -> list[Image.Image]:
        return [Image.open(io.BytesIO(b)).convert("RGB") for b in self.images]


def make_pairs(cfg: TinyWorldConfig, seed: int) -> tuple[Split, Split]:
    """The (train, validation) pairs in memory; the measured columns are filled by :func:`measure_pairs`."""
    splits = {"train": Split([], [], []), "validation": Split([], [], [])}
    for scene, row in pair_rows(cfg, seed):
        part = splits[row["split"]]
        part.scenes.append(scene)
        part.images.append(row["image"])
        part.rows.append(row)
    return splits["train"], splits["validation"]


def measure_pairs(cfg: TinyWorldConfig, policy_models: tuple[Any, Any], clip_models: tuple[Any, Any, Any],
                  splits: list[Split]) -> None:
    """Fill ``clip_margin``, ``sft_margin`` and the measured ``hardness`` of every pair in place."""
    model, processor = policy_models
    clip_model, preprocess, tokenizer = clip_models
    for split in splits:
        if not split.rows:
            continue
        images = split.pil()
        truth_first = [true_and_hallucinating(r) for r in split.rows]
        clip_m = hardness.clip_margins(clip_model, tokenizer, torch.stack([preprocess(im) for im in images]),
                                       truth_first)
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        questions = [r["question"] for r in split.rows]
        sft_m = hardness.sft_margins(model, processor, pixels, questions, truth_first)
        for row, c, m in zip(split.rows, clip_m, sft_m):
            row.update(clip_margin=c, sft_margin=m, hardness=hardness.classify(c, m, cfg.hard_margin))


def write_pairs(seed: int, folder: Path, train: Split, validation: Split) -> dict[str, Any]:
    """The preference dataset (train rows, then validation); returns the per-kind hardness summary."""
    writer = DatasetWriter(folder, schema=PAIR_SCHEMA)
    rows = train.rows + validation.rows
    for row in rows:
        writer.write(row)
    measured = hardness.summary(rows)
    writer.reports["tiny_world"] = {
        "hardness": dict(sorted(Counter(r["hardness"] for r in rows).items())),
        "kind": dict(sorted(Counter(r["kind"] for r in rows).items())),
        "swapped": sum(bool(r["swapped"]) for r in rows),
        "by_kind": measured,
        "seed": seed,
    }
    writer.close()
    return measured


def write_benchmark(cfg: TinyWorldConfig, seed: int, folder: Path, exclude: set[str], *,
                    name: str = "benchmark") -> Split:
    """Held-out images (none equal to an image of ``exclude``'s hashes) + jsonl + vocabulary.

    ``name`` "benchmark": ``cfg.eval_images`` images, ids ``twb-…``; "selection": the checkpoint-selection
    set (``cfg.selection_images``, ids ``tws-…``). Each draws from its own seeded generator, so adding the
    selection set changed none of the benchmark's (or the pairs') bytes.
    """
    count, prefix = (cfg.eval_images, "twb") if name == "benchmark" else (cfg.selection_images, "tws")
    rng = random.Random(f"{name}-{seed}")
    (folder / "images").mkdir(parents=True, exist_ok=True)
    split = Split([], [], [])
    while len(split.scenes) < count:
        scene, png = next(scenes(rng, cfg, 1))
        if hashlib.sha256(png).hexdigest() in exclude:
            continue  # held out from the training pairs (and the selection set from the benchmark)
        item_id = f"{prefix}-{len(split.scenes):05d}"
        (folder / "images" / f"{item_id}.png").write_bytes(png)
        split.scenes.append(scene)
        split.images.append(png)
        split.rows.append({"id": item_id, "image": f"images/{item_id}.png", "question": rng.choice(QUESTIONS),
                           "truth": scene.truth, "reference": describe(scene)})
    with (folder / "tiny_world.jsonl").open("w") as f:
        f.writelines(json.dumps(row) + "\n" for row in split.rows)
    vocab = {"objects": vocabulary(), "grammar": WELL_FORMED.pattern}  # grammar: eval's well_formed
    (folder / "vocabulary.json").write_text(json.dumps(vocab, indent=2))
    return split


def build_policy(cfg: TinyWorldConfig, seed: int, train: Split, folder: Path
                 ) -> tuple[Any, Any, dict[str, Any]]:
    """Tokenizer, processor and tiny LLaVA; SFT'd on noisy captions of the train images; saved."""
    processor = build_processor(cfg)
    model = policy.build_policy(cfg, processor, seed)
    info: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters()),
                            "image_seq_length": image_seq_length(cfg), "vocab_size": len(processor.tokenizer)}
    if cfg.sft_steps or cfg.shape_noise_steps:
        started = time.perf_counter()
        pixels = processor.image_processor(train.pil(), return_tensors="pt")["pixel_values"]  # both stages'
    if cfg.sft_steps:
        losses = policy.sft(model, processor, pixels, train.scenes,
                            lambda s, rng: noisy_caption(s, rng, cfg.caption_noise), cfg, seed)
        info.update(sft_seconds=time.perf_counter() - started, sft_first_loss=losses[0],
                    sft_final_loss=final_loss(losses))
    if cfg.shape_noise_steps:
        info.update(shape_noise_final_loss=final_loss(shape_noise_stage(cfg, seed, model, processor, pixels,
                                                                        train.scenes)))
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor, info


def final_loss(losses: list[float]) -> float:
    """The mean of the last 10 losses: what a run ended at, less one batch's noise."""
    return sum(losses[-10:]) / len(losses[-10:])


def shape_noise_stage(cfg: TinyWorldConfig, seed: int, model: Any, processor: Any, pixels: torch.Tensor,
                      scenes: list[Scene]) -> list[float]:
    """The second SFT stage (``shape_noise``): perception frozen, so the language model learns to
    doubt shapes that the image tokens still encode. ``pixels`` (N, 3, H, W) are ``scenes``' processed
    images. Returns its losses."""
    frozen = policy.perception(model)
    for module in frozen:
        module.requires_grad_(False)
    try:
        return policy.sft(model, processor, pixels, scenes,
                          lambda s, rng: noisy_caption(s, rng, cfg.caption_noise, cfg.shape_noise),
                          cfg, seed, steps=cfg.shape_noise_steps, stage="shape-noise")
    finally:
        for module in frozen:
            module.requires_grad_(True)


def build_clip(cfg: TinyWorldConfig, seed: int, train: Split, folder: Path) -> tuple[Any, Any, Any, dict]:
    """The tiny CLIP, trained on the train images' descriptions with hallucinated negatives; saved."""
    model, preprocess, tokenizer = clip.build_clip(cfg, seed)
    info: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters())}
    if cfg.clip_steps:
        started = time.perf_counter()
        pixels = torch.stack([preprocess(im) for im in train.pil()])
        losses = clip.train_clip(model, tokenizer, pixels, train.scenes, cfg, seed)
        info.update(clip_seconds=time.perf_counter() - started, clip_first_loss=losses[0],
                    clip_final_loss=final_loss(losses))
    model.eval()
    clip.save_clip(model, cfg, folder)
    return model, preprocess, tokenizer, info


def measure_policy(cfg: TinyWorldConfig, seed: int, model: Any, processor: Any, bench: Split) -> dict:
    """Hallucination rates of the policy on the benchmark, sampled (temperature 1) and greedy."""
    pixels = processor.image_processor(bench.pil(), return_tensors="pt")["pixel_values"]
    questions = [r["question"] for r in bench.rows]
    out: dict[str, Any] = {}
    for mode, sample in (("sampled", True), ("greedy", False)):
        answers = policy.generate(model, processor, pixels, questions, sample=sample,
                                  max_new_tokens=cfg.max_new_tokens, seed=seed,
                                  batch_size=cfg.eval_batch_size)
        out[mode] = quality.hallucination_stats(answers, bench.scenes)
        out[mode]["examples"] = answers[:4]
    return out


def measure_clip(model: Any, preprocess: Any, tokenizer: Any, bench: Split, validation: Split) -> dict:
    """CLIP retrieval on the benchmark images and chosen-over-rejected on the validation pairs."""
    out = quality.clip_retrieval(model, tokenizer, torch.stack([preprocess(im) for im in bench.pil()]),
                                 bench.scenes)
    if validation.rows:
        out.update(quality.clip_pair_accuracy(
            model, tokenizer, torch.stack([preprocess(im) for im in validation.pil()]),
            [r["chosen"] for r in validation.rows], [r["rejected"] for r in validation.rows],
            [r["kind"] for r in validation.rows]))
    return out


def check_empty(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: build the tiny world into a new folder "
                              "(or delete this one first)")


def build_here(config: DamoConfig, out: str | Path, kernels: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the tiny world into ``out`` (absent or empty), in this process; returns the summary also
    in report.json. Runs on :data:`BUILD_THREADS` torch threads (the caller's count is restored
    after). ``kernels``: the kernel pins this process runs under, recorded in report.json."""
    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        return _build(config, out, kernels or {})
    finally:
        torch.set_num_threads(threads)


def _build(config: DamoConfig, out: str | Path, kernels: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    cfg, seed, out = config.tiny_world, config.seed, Path(out)
    check_empty(out)
    train, validation = make_pairs(cfg, seed)
    clip.check_answers_fit(cfg, train.rows + validation.rows)  # fail now, not after the pre-training
    pair_hashes = {hashlib.sha256(b).hexdigest() for b in train.images + validation.images}
    bench = write_benchmark(cfg, seed, out / "benchmark", pair_hashes)
    bench_hashes = {hashlib.sha256(b).hexdigest() for b in bench.images}
    selection = write_benchmark(cfg, seed, out / "selection", pair_hashes | bench_hashes, name="selection")
    model, processor, policy_info = build_policy(cfg, seed, train, out / "policy")
    clip_model, preprocess, tokenizer, clip_info = build_clip(cfg, seed, train, out / "clip")
    measure_pairs(cfg, (model, processor), (clip_model, preprocess, tokenizer), [train, validation])
    measured = write_pairs(seed, out / "data", train, validation)
    policy_info.update(measure_policy(cfg, seed, model, processor, bench))
    clip_info.update(measure_clip(clip_model, preprocess, tokenizer, bench, validation))
    report = {
        "build_seconds": time.perf_counter() - started,
        "pairs": {"train": len(train.rows), "validation": len(validation.rows)},
        "pairs_measured": measured,
        "benchmark_images": len(bench.rows),
        "selection_images": len(selection.rows),
        "policy": policy_info,
        "clip": clip_info,
        "kernels": kernels or "unpinned (this CPU's own)",
    }
    built = summary(out, report)
    report["summary"] = built
    (out / "report.json").write_text(json.dumps(report, indent=2))
    world = {"version": WORLD_VERSION, "damo_version": damo.__version__, "seed": seed,
             "tiny_world": cfg.model_dump(mode="json"),
             "folders": {"data": "data", "policy": "policy", "clip": "clip", "benchmark": "benchmark",
                         "selection": "selection"}}
    (out / "world.json").write_text(json.dumps(world, indent=2))
    log.info("tiny world built in %.1f s at %s", report["build_seconds"], out)
    return built


def summary(out: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a caller prints: where, how long, how good."""
    return {
        "out": str(out),
        "build_seconds": round(report["build_seconds"], 2),
        "pairs": report["pairs"],
        "benchmark_images": report["benchmark_images"],
        "clip_retrieval_accuracy": report["clip"]["clip_retrieval_accuracy"],
        "clip_retrieval_chance": report["clip"]["clip_retrieval_chance"],
        "policy_chair_s_sampled": report["policy"]["sampled"]["chair_s"],
        "policy_chair_s_greedy": report["policy"]["greedy"]["chair_s"],
        "policy_exact_sampled": report["policy"]["sampled"]["exact_rate"],
        "hard_pairs": report["pairs_measured"]["all"]["hard_share"],
    }
