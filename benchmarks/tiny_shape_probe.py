"""What the tiny policy's image tokens encode: a linear probe for each object's colour and shape.

Why: wrong-shape pairs stay hard after any amount of preference training with the vision tower
frozen (``benchmarks/tiny_effect.md``). Either the LM fails to read shape from the image tokens, or
the tokens do not carry it. A linear probe on the tokens the LM reads (after the projector) tells the
two apart: where it cannot decode an attribute either, no training of the LM will learn it.

For every image of a world's ``data`` folder (pairs whose labels were swapped are skipped, their
chosen answer being wrong) the label is the colour or the shape word of the first (left) object,
and of the second where there is one, read from the chosen answer. The features are the image
tokens, flattened and standardised. A multinomial logistic regression is trained by full-batch Adam
on the first ``--train-fraction`` of the images and tested on the rest.

Usage::

    python benchmarks/tiny_shape_probe.py WORLD [--steps 500] [--train-fraction 0.8] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from damo.data.dataset import PreferenceDataset
from damo.models import load_model, load_processor
from damo.tinyworld.vocab import COLOURS, SHAPES, phrases

BATCH = 256
WEIGHT_DECAY = 1e-3  # a light L2 term: 1536 features against ~2400 images would otherwise memorise


@dataclass(frozen=True)
class ProbeResult:
    """Accuracies of one probe; ``chance`` is the most frequent test label's share."""

    train_accuracy: float
    test_accuracy: float
    chance: float
    test_images: int


def labels(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per image: first/second object's colour and shape (−1 where there is no second object), from
    the chosen answer's shape phrases (``vocab.phrases``; an invented object, "a car", is not one)."""
    out: dict[str, list[int]] = {k: [] for k in ("colour 1", "shape 1", "colour 2", "shape 2")}
    colours = sorted(COLOURS)
    for row in rows:
        objects = [p.split()[1:] for p in phrases(row["chosen"]) if len(p.split()) == 3]
        for i in (1, 2):
            colour, shape = objects[i - 1] if len(objects) >= i else (None, None)
            out[f"colour {i}"].append(-1 if colour is None else colours.index(colour))
            out[f"shape {i}"].append(-1 if shape is None else SHAPES.index(shape))
    return {k: torch.tensor(v) for k, v in out.items()}


def probe(features: torch.Tensor, y: torch.Tensor, train_fraction: float, steps: int) -> ProbeResult:
    """Train on the first ``train_fraction`` of the rows with ``y`` ≥ 0; test on the rest.

    ``features``: (images, dims), already standardised; ``y``: (images,) class ids, −1 = no label.
    Deterministic: zero initialisation, full-batch steps.
    """
    cut = int(train_fraction * len(y))
    labelled = torch.nonzero(y >= 0).squeeze(1)
    train, test = labelled[labelled < cut], labelled[labelled >= cut]
    if len(train) == 0 or len(test) == 0:
        raise ValueError("a probe needs labelled images on both sides of the split: "
                         f"{len(train)} / {len(test)}")
    classes = int(y.max()) + 1
    weight = torch.zeros(features.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimiser = torch.optim.Adam([weight, bias], lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        logits = features[train] @ weight + bias
        loss = torch.nn.functional.cross_entropy(logits, y[train]) + WEIGHT_DECAY * weight.square().sum()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        def accuracy(idx: torch.Tensor) -> float:
            return float(((features[idx] @ weight + bias).argmax(1) == y[idx]).double().mean())

        chance = float(torch.bincount(y[test], minlength=classes).max()) / len(test)
        return ProbeResult(accuracy(train), accuracy(test), chance, len(test))


def image_tokens(world: Path, rows: list[dict[str, Any]]) -> torch.Tensor:
    """(images, tokens × width): the policy's image tokens after the projector, standardised."""
    model = load_model(world / "policy", "fp32").eval()
    processor = load_processor(world / "policy")
    chunks = []
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            batch = rows[start:start + BATCH]
            images = [Image.open(io.BytesIO(r["image"])).convert("RGB") for r in batch]
            pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
            out = model.model.get_image_features(pixel_values=pixels)
            tokens = out.pooler_output if hasattr(out, "pooler_output") else out
            chunks.append(torch.stack(list(tokens)).reshape(len(batch), -1).float())
    features = torch.cat(chunks)
    return (features - features.mean(0)) / (features.std(0) + 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", type=Path)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [r for r in PreferenceDataset(args.world / "data").read().to_pylist() if not r["swapped"]]
    features = image_tokens(args.world, rows)
    results = {name: vars(probe(features, y, args.train_fraction, args.steps))
               for name, y in labels(rows).items()}
    print("| label | train accuracy | test accuracy | chance | test images |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['train_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['chance']:.3f} "
              f"| {r['test_images']} |")
    if args.out:
        args.out.write_text(json.dumps({"world": str(args.world), "images": len(rows), "steps": args.steps,
                                        "train_fraction": args.train_fraction, "probes": results}, indent=1))


if __name__ == "__main__":
    main()
