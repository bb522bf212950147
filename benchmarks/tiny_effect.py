"""The effect DAMA exists for, on the tiny world: dpo and dama arms side by side over several seeds.

Usage: ``python benchmarks/tiny_effect.py [--world DIR] [--seeds 0 1 2] [--arms dpo dama] [--set k=v ...]``

The tiny world (built and cached under ``.cache/tiny-world`` when ``--world`` is not given) goes
through the real steps: ``score`` (CLIP δ), ``reference``, then ``train`` once per arm and seed with
the ``tiny`` preset. Each policy, and the SFT policy it started from, is measured on
- held-out preference (``damo.train.heldout``): the share of validation pairs with
  logp(chosen) > logp(rejected) (``pref_acc``), with a positive log-ratio margin against the reference
  (``reward_acc``; the SFT policy scores 0.5), and the mean logp(chosen) − logp(rejected) (``margin``);
- hallucination on the world's benchmark images (held out from training): CHAIR-style rates over the
  world's vocabulary, ``chair_s`` (answers with a word absent from the image) and ``chair_i`` (share
  of mentioned words absent), sampled at temperature 1 and greedy.
Writes ``effect.json`` and ``effect.md`` (the table) in ``--out``; ends with
``ratio chair_s_dama_over_dpo=<...> extra_object_dama_over_dpo=<...> reward_acc_dama_minus_dpo=<...>``
(means over seeds).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def prepare(world: Path, work: Path, overrides: list[str]) -> Path:
    """score → reference on the world's dataset; returns the dataset folder ready for training."""
    from damo.config import load_config
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as reference
    from damo.steps.score import ScorePaths
    from damo.steps.score import run as score

    config = load_config(
        "tiny", [f"score.clip_model={world / 'clip'}", "score.clip_pretrained=null", *overrides]
    )
    if not (work / "scored" / "manifest.json").is_file():
        score(config, ScorePaths(data=world / "data", out=work / "scored"))
    if not (work / "ref" / "manifest.json").is_file():
        reference(config, ReferencePaths(data=work / "scored", model=str(world / "policy"), out=work / "ref"))
    return work / "ref"


def hallucination(model_dir: Path, world: Path, seed: int, max_new_tokens: int) -> dict[str, float]:
    """CHAIR-style rates on the world's benchmark images, sampled (temperature 1) and greedy."""
    from PIL import Image

    from damo.models import load_model, load_processor
    from damo.tinyworld.policy import generate
    from damo.tinyworld.vocab import HALLUCINATED_OBJECTS, mentioned

    bench = world / "benchmark"
    items = [json.loads(line) for line in (bench / "tiny_world.jsonl").read_text().splitlines()]
    images = [Image.open(io.BytesIO((bench / it["image"]).read_bytes())).convert("RGB") for it in items]
    model = load_model(model_dir, "fp32").eval()
    processor = load_processor(model_dir)
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    out: dict[str, float] = {}
    for mode, sample in (("sampled", True), ("greedy", False)):
        answers = generate(
            model,
            processor,
            pixels,
            [it["question"] for it in items],
            sample=sample,
            max_new_tokens=max_new_tokens,
            seed=seed,
            batch_size=64,
        )
        said = [mentioned(a) for a in answers]
        bad = [s - set(it["truth"]) for s, it in zip(said, items)]
        out[f"chair_s_{mode}"] = sum(bool(b) for b in bad) / len(items)
        out[f"chair_i_{mode}"] = sum(len(b) for b in bad) / max(sum(len(s) for s in said), 1)
        out[f"extra_object_{mode}"] = sum(bool(s & set(HALLUCINATED_OBJECTS)) for s in said) / len(items)
    return out


def measure(model_dir: Path, data: Path, world: Path, seed: int, max_new_tokens: int) -> dict[str, float]:
    from damo.train.heldout import heldout_preference

    held = heldout_preference(model_dir, data, batch_size=64, chunk_tokens=4096, precision="fp32")
    return {"pref_acc": held["accuracy"], "reward_acc": held["reward_accuracy"], "margin": held["margin"],
            **hallucination(model_dir, world, seed, max_new_tokens)}


def train_one(data: Path, world: Path, out: Path, arm: str, seed: int, overrides: list[str]) -> Path:
    from damo.config import load_config
    from damo.steps.train import TrainPaths, run

    config = load_config("tiny", [f"seed={seed}", f"train.loss.arm={arm}", *overrides])
    if not (out / "result.json").is_file():
        run(config, TrainPaths(data=data, model=str(world / "policy"), out=out))
    return out / "model"


def table(results: dict[str, Any], keys: list[str]) -> str:
    lines = ["| model | seed | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    lines.append("| SFT (before) | – | " + " | ".join(f"{results['before'][k]:.3f}" for k in keys) + " |")
    for arm, runs in results["arms"].items():
        for seed, m in runs.items():
            lines.append(f"| {arm} | {seed} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |")
        means = {k: statistics.fmean(m[k] for m in runs.values()) for k in keys}
        sds = {k: statistics.pstdev([m[k] for m in runs.values()]) for k in keys}
        lines.append(
            f"| **{arm} mean ± sd** | {len(runs)} | "
            + " | ".join(f"{means[k]:.3f} ± {sds[k]:.3f}" for k in keys)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="a built tiny world (default: the cached one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["dpo", "dama"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from damo.config import load_config

    if args.world is None:
        from damo.tinyworld.cache import cached_world

        args.world = cached_world(load_config("tiny"), ROOT / ".cache" / "tiny-world")
    out = args.out or Path(tempfile.mkdtemp(prefix="damo-effect-"))
    data = prepare(args.world, out, args.overrides)
    before = measure(args.world / "policy", data, args.world, 0, args.max_new_tokens)
    results: dict[str, Any] = {
        "world": str(args.world),
        "overrides": args.overrides,
        "before": before,
        "arms": {},
    }
    for arm in args.arms:
        results["arms"][arm] = {}
        for seed in args.seeds:
            model = train_one(data, args.world, out / f"{arm}-seed{seed}", arm, seed, args.overrides)
            results["arms"][arm][seed] = measure(model, data, args.world, seed, args.max_new_tokens)
            print(arm, seed, results["arms"][arm][seed], flush=True)
    keys = ["pref_acc", "reward_acc", "margin", "chair_s_sampled", "chair_i_sampled", "extra_object_sampled",
            "chair_s_greedy", "chair_i_greedy"]
    text = table(results, keys)
    (out / "effect.json").write_text(json.dumps(results, indent=2))
    (out / "effect.md").write_text(text + "\n")
    print(text)
    print(f"results in {out}")
    if {"dpo", "dama"} <= set(results["arms"]):
        mean = {
            arm: {k: statistics.fmean(m[k] for m in results["arms"][arm].values()) for k in keys}
            for arm in ("dpo", "dama")
        }
        ratio = mean["dama"]["chair_s_sampled"] / max(mean["dpo"]["chair_s_sampled"], 1e-9)
        extra = mean["dama"]["extra_object_sampled"] / max(mean["dpo"]["extra_object_sampled"], 1e-9)
        print(f"ratio chair_s_dama_over_dpo={ratio:.3f} extra_object_dama_over_dpo={extra:.3f} "
              f"reward_acc_dama_minus_dpo={mean['dama']['reward_acc'] - mean['dpo']['reward_acc']:.3f}")


if __name__ == "__main__":
    main()
