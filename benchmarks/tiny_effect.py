"""What DAMA is for, on the tiny world: loss arms side by side over seeds, step counts and label noise.

Usage::

    python benchmarks/tiny_effect.py [--world DIR] [--arms dpo data model dama dama_running_std
        sft_chosen dama_nll dama_fork]
        [--seeds 0 1 2] [--steps 40 80 160] [--noise 0.0 0.3] [--noise-kinds KIND ...] [--samples 4]
        [--set k=v ...] [--out DIR]

The tiny world (built and cached under ``.cache/tiny-world`` when ``--world`` is not given) goes
through the real steps: ``score`` (CLIP δ) and ``reference`` once per label-noise level (the noisy
dataset is the world's with that share of its *training* pairs swapped, exactly as a world built with
``tiny_world.label_noise`` has them; validation stays clean; ``--noise-kinds`` swaps only pairs of
those kinds, as ``tiny_world.label_noise_kinds``), then ``train`` once per arm, seed and
step count with the ``tiny`` preset. Every policy and the SFT policy it started from are measured by
``benchmarks/_tiny_measure.py`` (held-out reward accuracy per pair type, attribute errors and extra
objects from ``--samples`` answers per benchmark image, well-formedness, length, the shift of
log p(chosen) and the drift KL(πθ‖πref)).

Arms are compared at matched drift: for each seed, at each step count of ``dpo``, the other arm's
sampled extra-object rate is interpolated (linearly, through the SFT point at 0) at dpo's drift, so an
arm cannot win by simply moving further from the reference. Two drift axes: the KL estimate, and
the drop of sampled well-formedness (the damage to writing).

Writes ``effect.json`` (after every run: the world's checksum, every setting, every measurement, the
effective step counts) and ``effect.md`` (mean ± sd tables and the matched-drift comparison) in
``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tiny_measure as measure  # noqa: E402

from damo.config.data import PairKind  # noqa: E402

# Under every arm: DAMA's full sum over each answer's tokens, and the last step's weights. The demo's
# preset (configs/tiny.yaml) counts rejected answers through their fork and picks its step on held-out
# images (train.select); here arms are compared at fixed step counts, and an arm names any departure.
BASE = ["train.loss.rejected_tokens=all", "train.select.benchmark=null"]
# Arm name → config overrides. `dama` keeps the authors' keep-set (unit-variance Gaussian around R̄).
ARMS: dict[str, list[str]] = {
    "dpo": ["train.loss.arm=dpo"],
    "data": ["train.loss.arm=data"],
    "model": ["train.loss.arm=model"],
    "dama": ["train.loss.arm=dama"],
    "dama_running_std": ["train.loss.arm=dama", "train.loss.keep_weight=running_std"],
    # Controls, not DAMA: fine-tuning on the chosen answers alone ("SFT on chosen"), and dama with
    # that NLL added (RPO's anchor). They show what the preference itself adds over its chosen answer.
    "sft_chosen": ["train.loss.preference_weight=0", "train.loss.chosen_nll_weight=1"],
    "dama_nll": ["train.loss.arm=dama", "train.loss.chosen_nll_weight=1"],
    # Not DAMA either: dama with rejected answers summed only through their fork, which stops the loss
    # lowering the correct words after a wrong one (tiny_effect.md, "Why longer runs break the grammar").
    "dama_fork": ["train.loss.arm=dama", "train.loss.rejected_tokens=through_fork"],
}
TABLE_KEYS = ["kl", "chosen_shift", "reward_acc", "reward_acc.hard", "reward_acc.easy",
              "reward_acc.extra_object", "reward_acc.wrong_colour", "reward_acc.wrong_shape",
              "extra_object_rate_sampled", "shape_error_rate_sampled", "colour_error_rate_sampled",
              "chair_i_sampled", "well_formed_rate_sampled", "mean_words_sampled", "exact_rate_greedy",
              "extra_object_rate_greedy", "shape_error_rate_greedy", "well_formed_rate_greedy"]
HEADLINE = "extra_object_rate_sampled"  # the rate arms are compared on at matched drift
WELL_FORMED = "well_formed_rate_sampled"
FLOOR_METRIC = "tiny_world.well_formed"  # the demo's promotion floor on WELL_FORMED (registry.gate_floor)
# Drift axes, each 0 at the SFT model: KL(πθ‖πref) per sampled answer, and the damage to writing.
DRIFT: dict[str, Callable[[dict[str, Any], dict[str, Any]], float]] = {
    "kl": lambda run, before: float(run["kl"]),
    "well_formed_drop": lambda run, before: float(before[WELL_FORMED] - run[WELL_FORMED]),
}


def world_checksum(world: Path) -> str:
    """sha256 over what defines the world's data and models."""
    h = hashlib.sha256()
    for rel in ("world.json", "data/manifest.json", "policy/model.safetensors",
                "clip/open_clip_model.safetensors", "benchmark/tiny_world.jsonl"):
        h.update(rel.encode())
        h.update((world / rel).read_bytes())
    return h.hexdigest()


def noisy_copy(world: Path, fraction: float, out: Path, kinds: list[str] | None = None) -> Path:
    """The world's dataset with ``fraction`` of its training pairs (of ``kinds``; None: every kind)
    swapped, as the world's build with ``label_noise`` and ``label_noise_kinds`` would."""
    from damo.data.dataset import DatasetWriter, PreferenceDataset
    from damo.tinyworld.pairs import label_noise_draws, with_label_noise

    if (out / "manifest.json").is_file():
        return out
    source = PreferenceDataset(world / "data")
    draws = label_noise_draws(json.loads((world / "world.json").read_text())["seed"])
    writer = DatasetWriter(out, schema=source.schema)
    for row in source.read().to_pylist():  # world order: one draw per pair, as pair_rows draws them
        writer.write(with_label_noise(row, draws.random(), fraction, kinds))
    writer.close()
    return out


def prepare(world: Path, data: Path, work: Path, overrides: list[str]) -> Path:
    """score → reference on ``data``; returns the dataset folder ready for training."""
    from damo.config import load_config
    from damo.steps.reference import ReferencePaths
    from damo.steps.reference import run as reference
    from damo.steps.score import ScorePaths
    from damo.steps.score import run as score

    clip = [f"score.clip_model={world / 'clip'}", "score.clip_pretrained=null"]
    config = load_config("tiny", [*BASE, *clip, *overrides])
    if not (work / "scored" / "manifest.json").is_file():
        score(config, ScorePaths(data=data, out=work / "scored"))
    if not (work / "ref" / "manifest.json").is_file():
        reference(config, ReferencePaths(data=work / "scored", model=str(world / "policy"), out=work / "ref"))
    return work / "ref"


def rejected_tokens(arm: str) -> str:
    """The arm's ``train.loss.rejected_tokens``: its reference columns must sum the same tokens."""
    from damo.config import load_config

    return load_config("tiny", [*BASE, *ARMS[arm]]).train.loss.rejected_tokens


def train_one(data: Path, world: Path, out: Path, arm: str, seed: int, steps: int, overrides: list[str]
              ) -> dict[str, Any]:
    """The real ``train`` step for one arm, seed and step count; its result (model folder, the
    effective step count, the last logged training metrics)."""
    from damo.config import load_config
    from damo.steps.train import TrainPaths, run

    config = load_config("tiny", [*BASE, f"seed={seed}", *ARMS[arm], f"train.max_steps={steps}",
                                  f"train.save_steps={steps}", *overrides])
    if not (out / "result.json").is_file():
        run(config, TrainPaths(data=data, model=str(world / "policy"), out=out))
    return dict(json.loads((out / "result.json").read_text()))


def interpolate(curve: list[tuple[float, float]], x: float) -> float | None:
    """The curve (points (kl, rate), any order) at ``x`` by linear interpolation; None outside it."""
    points = sorted(curve)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def curve(runs: dict[str, Any], before: dict[str, Any], arm: str, seed: int, axis: str
          ) -> list[tuple[float, float]]:
    """One arm's (drift, headline rate) points for one seed, starting at the SFT model's (0, rate)."""
    return [(0.0, before[HEADLINE])] + [(DRIFT[axis](r, before), r[HEADLINE]) for r in runs.values()
                                        if r["arm"] == arm and r["seed"] == seed]


def rate_se(run: dict[str, Any]) -> float | None:
    """Binomial standard error of a run's sampled headline rate (None when the count is unknown)."""
    n, p = run.get("num_answers_sampled"), run[HEADLINE]
    return None if not n else math.sqrt(p * (1 - p) / n)


def matched_drift(runs: dict[str, Any], before: dict[str, Any], arm: str, against: str = "dpo",
                  axis: str = "kl") -> list[dict[str, Any]]:
    """Per seed and ``against`` step count: both arms' headline rate at ``against``'s drift on ``axis``
    (``arm``'s interpolated), their difference and the binomial se of ``against``'s rate."""
    out = []
    for seed in sorted({r["seed"] for r in runs.values() if r["arm"] == arm}):
        mine = curve(runs, before, arm, seed, axis)
        for r in sorted((r for r in runs.values() if r["arm"] == against and r["seed"] == seed),
                        key=lambda r: r["steps"]):
            at = interpolate(mine, DRIFT[axis](r, before))
            out.append({"seed": seed, "steps": r["steps"], "drift": DRIFT[axis](r, before),
                        against: r[HEADLINE], arm: at, "diff": None if at is None else at - r[HEADLINE],
                        "se": rate_se(r), "wins": None if at is None else at < r[HEADLINE]})
    return out


def mean_gap(runs: dict[str, Any], before: dict[str, Any], arm: str, against: str = "dpo",
             axis: str = "kl") -> list[dict[str, Any]]:
    """Per seed: the mean vertical gap ``arm − against`` between the two arms' piecewise-linear curves
    (headline rate over drift) across the drift range both reach. Symmetric, unlike
    :func:`matched_drift`, which interpolates only ``arm``: a chord of a convex curve lies above
    it, so sparse points of the interpolated arm count against it."""
    out = []
    for seed in sorted({r["seed"] for r in runs.values() if r["arm"] == arm}):
        mine, theirs = curve(runs, before, arm, seed, axis), curve(runs, before, against, seed, axis)
        lo = max(min(x for x, _ in mine), min(x for x, _ in theirs))
        hi = min(max(x for x, _ in mine), max(x for x, _ in theirs))
        xs = sorted({x for x, _ in [*mine, *theirs] if lo <= x <= hi})
        gaps = [interpolate(mine, x) - interpolate(theirs, x) for x in xs]  # type: ignore[operator]
        area = sum((x1 - x0) * (g0 + g1) / 2 for (x0, g0), (x1, g1) in itertools.pairwise(zip(xs, gaps)))
        gap = area / (hi - lo) if hi > lo else None
        out.append({"seed": seed, "range": [lo, hi], "gap": gap, "wins": None if gap is None else gap < 0})
    return out


def best_at_floor(runs: dict[str, Any], arm: str, floor: float) -> dict[int, dict[str, Any]]:
    """Per seed: ``arm``'s lowest headline rate among its runs whose sampled well-formedness is at or
    above ``floor`` (the demo's promotion floor), the step count, and ``open``: True when its longest
    run is still above the floor (more steps might go lower)."""
    out = {}
    for seed in sorted({r["seed"] for r in runs.values() if r["arm"] == arm}):
        mine = sorted((r for r in runs.values() if r["arm"] == arm and r["seed"] == seed),
                      key=lambda r: r["steps"])
        fine = [r for r in mine if r[WELL_FORMED] >= floor]
        best = min(fine, key=lambda r: r[HEADLINE]) if fine else None
        out[seed] = {"rate": None if best is None else best[HEADLINE],
                     "steps": None if best is None else best["steps"], "open": mine[-1][WELL_FORMED] >= floor}
    return out


def at_floor(runs: dict[str, Any], arm: str, floor: float, against: str = "dpo") -> list[dict[str, Any]]:
    """Per seed: both arms' best rate at the well-formedness floor (:func:`best_at_floor`)."""
    mine, theirs = best_at_floor(runs, arm, floor), best_at_floor(runs, against, floor)
    return [{"seed": seed, "floor": floor, arm: mine[seed], against: theirs.get(seed),
             "wins": None if mine[seed]["rate"] is None or theirs.get(seed, {}).get("rate") is None
             else mine[seed]["rate"] < theirs[seed]["rate"]} for seed in mine]


def mean_sd(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}" if values else "—"


def tables(results: dict[str, Any]) -> str:
    lines = []
    for noise, level in results["noise"].items():
        header = "| arm | steps | seeds | " + " | ".join(TABLE_KEYS) + " |"
        lines += ["", f"## label noise {noise}", "", header, "|---|---|---|" + "---|" * len(TABLE_KEYS),
                  "| SFT (reference) | 0 | – | " + " | ".join(f"{level['before'].get(k, 0.0):.3f}"
                                                           for k in TABLE_KEYS) + " |"]
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for run in level["runs"].values():
            groups.setdefault((run["arm"], run["steps"]), []).append(run)
        for (arm, steps), runs in sorted(groups.items()):
            lines.append(f"| {arm} | {steps} | {len(runs)} | "
                         + " | ".join(mean_sd([r[k] for r in runs if k in r]) for k in TABLE_KEYS) + " |")
        for (axis, arm), rows in ((k.split(":"), v) for k, v in level["matched_drift"].items()):
            lines += ["", f"Matched drift ({axis}), {arm} vs dpo: {HEADLINE} at dpo's {axis}:", "",
                      f"| seed | dpo steps | {axis} | dpo | {arm} | diff | se (dpo) | {arm} lower |",
                      "|---" * 8 + "|"]
            lines += [f"| {m['seed']} | {m['steps']} | {m['drift']:.3f} | {m['dpo']:.3f} | "
                      + ("— | —" if m[arm] is None else f"{m[arm]:.3f} | {m['diff']:+.3f}")
                      + (" | —" if m.get("se") is None else f" | {m['se']:.3f}") + f" | {m['wins']} |"
                      for m in rows]
            lines += ["", f"Mean gap {arm} − dpo between the curves over the {axis} range both reach "
                      f"(negative: {arm} lower):", "", "| seed | range | gap | lower |", "|---" * 4 + "|"]
            lines += [f"| {g['seed']} | {g['range'][0]:.3f}–{g['range'][1]:.3f} | "
                      + ("—" if g["gap"] is None else f"{g['gap']:+.4f}") + f" | {g['wins']} |"
                      for g in level.get("mean_gap", {}).get(f"{axis}:{arm}", [])]
        for arm, rows in level.get("at_floor", {}).items():
            lines += ["", f"Best {HEADLINE} at sampled well-formedness ≥ the demo's floor (steps; open: "
                      "the longest run is still above it):", "",
                      f"| seed | floor | dpo | {arm} | {arm} lower |", "|---" * 5 + "|"]
            lines += [f"| {m['seed']} | {m['floor']:.2f} | {_best(m['dpo'])} | {_best(m[arm])} | "
                      f"{m['wins']} |" for m in rows]
    return "\n".join(lines)


def _best(best: dict[str, Any] | None) -> str:
    if not best or best["rate"] is None:
        return "—"
    return f"{best['rate']:.3f} ({best['steps']}{', open' if best['open'] else ''})"


def run_level(args: argparse.Namespace, noise: float, out: Path, results: dict[str, Any]) -> None:
    """Every seed × step count × arm on one label-noise level; results saved after each run (a rerun
    with the same ``--out`` resumes: finished runs are kept)."""
    data = args.world / "data" if noise == 0 else noisy_copy(args.world, noise, out / "noisy-data",
                                                                args.noise_kinds)
    ready = prepare(args.world, data, out, args.overrides)
    # Arms that sum other rejected tokens train on reference columns summed the same way.
    ready_for = {}
    for arm in args.arms:
        tokens = rejected_tokens(arm)
        ready_for[arm] = ready if tokens == "all" else prepare(
            args.world, data, out / f"rejected-{tokens}",
            [*args.overrides, f"train.loss.rejected_tokens={tokens}"])
    reference = measure.load(args.world / "policy")
    held, images = measure.held_out(ready, reference), measure.bench(args.world, reference[1])
    level = results["noise"].setdefault(noise_name(noise, args.noise_kinds), {"runs": {}})
    level["matched_drift"], level["mean_gap"], level["at_floor"] = {}, {}, {}  # recomputed at the end

    def measured(policy: tuple[Any, Any], seed: int) -> dict[str, Any]:
        return {**measure.preference(policy, held),
                **measure.hallucination(policy, reference, images, samples=args.samples, seed=seed,
                                        max_new_tokens=args.max_new_tokens)}

    if "before" not in level:
        level["before"] = measured(reference, 0)
    for seed in args.seeds:  # seed-major: an interrupted sweep still holds whole comparisons
        for steps in args.steps:
            for arm in args.arms:
                name = f"{arm}-seed{seed}-steps{steps}"
                if name in level["runs"]:
                    continue
                trained = train_one(ready_for[arm], args.world, out / name, arm, seed, steps, args.overrides)
                level["runs"][name] = {"arm": arm, "seed": seed, "steps": int(trained["steps"]),
                                       "train_final": trained["final"], "train_seconds": trained["seconds"],
                                       **measured(measure.load(Path(trained["model"])), seed)}
                print(name, json.dumps({k: level["runs"][name].get(k) for k in TABLE_KEYS}), flush=True)
                save(results, args.out)
    compare(level, args.arms, args.overrides)
    save(results, args.out)


def noise_name(noise: float, kinds: list[str] | None) -> str:
    """A label-noise level's name: its fraction, and the kinds it swaps when not every kind."""
    return f"{noise}" if noise == 0 or kinds is None else f"{noise}-{'+'.join(kinds)}"


def compare(level: dict[str, Any], arms: list[str], overrides: list[str]) -> None:
    """Every arm against dpo: at matched drift, by the mean gap, and at the well-formedness floor."""
    from damo.config import load_config

    others = [arm for arm in arms if arm != "dpo" and "dpo" in arms]
    pairs = [(axis, arm) for axis in DRIFT for arm in others]
    level["matched_drift"] = {f"{axis}:{arm}": matched_drift(level["runs"], level["before"], arm, axis=axis)
                              for axis, arm in pairs}
    level["mean_gap"] = {f"{axis}:{arm}": mean_gap(level["runs"], level["before"], arm, axis=axis)
                         for axis, arm in pairs}
    floor = load_config("tiny", [*BASE, *overrides]).registry.gate_floor.get(FLOOR_METRIC, 0.0)
    level["at_floor"] = {arm: at_floor(level["runs"], arm, floor) for arm in others}


def save(results: dict[str, Any], out: Path) -> None:
    (out / "effect.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "effect.md").write_text(f"# Tiny-world effect (world {results['world_checksum'][:16]})\n"
                                   + tables(results) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--world", type=Path, help="a built tiny world (default: the cached one)")
    parser.add_argument("--arms", nargs="+", default=["dpo", "dama"], choices=sorted(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[40, 80, 160])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--noise-kinds", nargs="+", default=None, choices=list(get_args(PairKind)),
                        help="swap only pairs of these kinds (default: every kind)")
    parser.add_argument("--samples", type=int, default=4, help="sampled answers per benchmark image")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from damo.config import load_config

    if args.world is None:
        from damo.tinyworld.cache import cached_world

        args.world = cached_world(load_config("tiny"), ROOT / ".cache" / "tiny-world")
    out = args.out = args.out or Path(tempfile.mkdtemp(prefix="damo-effect-"))
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "effect.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.is_file() else {"noise": {}}
    results.update(world=str(args.world), world_checksum=world_checksum(args.world),
                   settings={k: v for k, v in vars(args).items() if k != "world"},
                   train_config=load_config("tiny", [*BASE, *args.overrides]).train.model_dump(mode="json"))
    for noise in args.noise:
        run_level(args, noise, out / f"noise-{noise_name(noise, args.noise_kinds)}", results)
    print((out / "effect.md").read_text())
    print(f"results in {out}")


if __name__ == "__main__":
    main()
