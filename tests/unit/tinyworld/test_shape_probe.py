"""benchmarks/tiny_shape_probe.py: labels read left to right from the chosen answer, and a probe that
decodes what the features encode linearly and nothing more than chance of what they do not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import tiny_shape_probe


def test_labels_follow_the_objects_left_to_right() -> None:
    rows = [{"chosen": "There is a red triangle and a blue circle."}, {"chosen": "There is a green square."}]
    got = tiny_shape_probe.labels(rows)
    colours = sorted(tiny_shape_probe.COLOURS)
    assert got["colour 1"].tolist() == [colours.index("red"), colours.index("green")]
    assert got["shape 1"].tolist() == [2, 1]  # SHAPES = (circle, square, triangle)
    assert got["shape 2"].tolist() == [0, -1]  # no second object: no label


def test_a_linearly_encoded_label_is_decoded_and_noise_is_not() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    features = torch.randn(600, 20, generator=g)
    features[torch.arange(600), y] += 3.0  # each class along a feature of its own
    encoded = tiny_shape_probe.probe(features, y, train_fraction=0.8, steps=300)
    assert encoded.test_accuracy > 0.95 and encoded.test_images == 120
    unrelated = tiny_shape_probe.probe(torch.randn(600, 20, generator=g), y, train_fraction=0.8, steps=300)
    assert unrelated.test_accuracy < unrelated.chance + 0.12


def test_unlabelled_images_are_left_out_and_an_empty_side_is_refused() -> None:
    y = torch.tensor([0, 1, -1, 0, 1, -1, 0, 1, -1, 1])
    result = tiny_shape_probe.probe(torch.randn(10, 3), y, train_fraction=0.5, steps=5)
    assert result.test_images == 3  # rows 5..9 minus the unlabelled 5 and 8
    with pytest.raises(ValueError, match="both sides"):
        tiny_shape_probe.probe(torch.randn(10, 3), y, train_fraction=1.0, steps=5)
