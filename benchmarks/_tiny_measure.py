"""What ``tiny_effect.py`` measures of one policy on the tiny world (all on data it never trained on).

Held-out pairs (the world's clean ``validation`` split), with log π summed over the answer and
``</s>`` (:func:`damo.tinyworld.policy.answer_logps`) for the policy θ and the SFT reference:
- ``reward_acc``: share with a positive DPO reward margin
  ``[log πθ(c) − log πref(c)] − [log πθ(r) − log πref(r)]``, overall, per construction ``kind``
  (``reward_acc.extra_object`` …) and per measured ``hardness`` (``reward_acc.hard`` …);
- ``pref_acc``: share with ``log πθ(c) > log πθ(r)``;
- ``chosen_shift``: mean ``log πθ(c) − log πref(c)`` (negative: the chosen answers got less likely,
  the over-optimisation signature).

Benchmark images (held out from every pair), ``samples`` answers each at temperature 1, and greedy:
extra objects, shape and colour errors, CHAIR, exactness, well-formedness and length
(:func:`damo.tinyworld.quality.answer_stats`), plus the drift from the reference:
``kl`` = mean over sampled answers y of ``log πθ(y) − log πref(y)``, an unbiased estimate of
KL(πθ ‖ πref) per answer — what DPO's β bounds, and the axis on which arms are compared — and
``kl_se``, its standard error over the sampled answers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

Scorer = Callable[[list[str]], torch.Tensor]  # answers → log π per answer, for fixed images/questions


@dataclass
class HeldOut:
    """The validation pairs of a dataset with the reference log-probs of their answers."""

    rows: list[dict[str, Any]]
    pixels: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor


@dataclass
class Bench:
    """The world's benchmark images, repeated ``samples`` times for the sampled decoding."""

    items: list[dict[str, Any]]
    pixels: torch.Tensor


def load(model_dir: Path) -> tuple[Any, Any]:
    from damo.models import load_model, load_processor

    return load_model(model_dir, "fp32").eval(), load_processor(model_dir)


def logps(model: Any, processor: Any, pixels: torch.Tensor, questions: list[str], answers: list[str]
          ) -> torch.Tensor:
    from damo.tinyworld.policy import answer_logps

    return answer_logps(model, processor, pixels, questions, answers, batch_size=128).double()


def held_out(data: Path, reference: tuple[Any, Any]) -> HeldOut:
    from damo.data.dataset import PreferenceDataset

    rows = PreferenceDataset(data).read(split="validation").to_pylist()
    model, processor = reference
    images = [Image.open(io.BytesIO(r["image"])).convert("RGB") for r in rows]
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    questions = [r["question"] for r in rows]
    return HeldOut(rows, pixels, logps(model, processor, pixels, questions, [r["chosen"] for r in rows]),
                   logps(model, processor, pixels, questions, [r["rejected"] for r in rows]))


def bench(world: Path, processor: Any) -> Bench:
    folder = world / "benchmark"
    items = [json.loads(line) for line in (folder / "tiny_world.jsonl").read_text().splitlines()]
    images = [Image.open(folder / it["image"]).convert("RGB") for it in items]
    return Bench(items, processor.image_processor(images, return_tensors="pt")["pixel_values"])


def preference(policy: tuple[Any, Any], held: HeldOut) -> dict[str, float]:
    """Reward/preference accuracy (overall, per kind, per hardness) and the chosen answers' shift."""
    model, processor = policy
    questions = [r["question"] for r in held.rows]
    chosen = logps(model, processor, held.pixels, questions, [r["chosen"] for r in held.rows])
    rejected = logps(model, processor, held.pixels, questions, [r["rejected"] for r in held.rows])
    h = (chosen - held.ref_chosen) - (rejected - held.ref_rejected)
    right = (h > 0).double() + 0.5 * (h == 0).double()
    out = {"reward_acc": float(right.mean()), "pref_acc": float((chosen > rejected).double().mean()),
           "chosen_shift": float((chosen - held.ref_chosen).mean())}
    for column in ("kind", "hardness"):
        for value in sorted({r[column] for r in held.rows}):
            mask = torch.tensor([r[column] == value for r in held.rows])
            out[f"reward_acc.{value}"] = float(right[mask].mean())
    return out


def hallucination(policy: tuple[Any, Any], reference: tuple[Any, Any], images: Bench, *, samples: int,
                  seed: int, max_new_tokens: int) -> dict[str, float]:
    """Sampled (``samples`` per image) and greedy rates, and the sampled answers' KL from the reference."""
    from damo.tinyworld.policy import generate
    from damo.tinyworld.quality import answer_stats

    model, processor = policy
    out: dict[str, float] = {}
    for mode, repeat, sample in (("sampled", samples, True), ("greedy", 1, False)):
        items = [it for it in images.items for _ in range(repeat)]
        pixels = images.pixels.repeat_interleave(repeat, dim=0)
        questions = [it["question"] for it in items]
        answers = generate(model, processor, pixels, questions, sample=sample, max_new_tokens=max_new_tokens,
                           seed=seed, batch_size=128)
        stats = answer_stats(answers, [it["truth"] for it in items], [it["reference"] for it in items])
        out.update({f"{k}_{mode}": v for k, v in stats.items()})  # num_answers_<mode>: for the noise
        out[f"examples_{mode}"] = answers[:: max(1, len(answers) // 6)][:6]  # type: ignore[assignment]
        if sample:
            ref_model, ref_processor = reference
            kl = (logps(model, processor, pixels, questions, answers)
                  - logps(ref_model, ref_processor, pixels, questions, answers))
            out["kl"], out["kl_se"] = float(kl.mean()), float(kl.std() / len(kl) ** 0.5)
    return out
