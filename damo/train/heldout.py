"""Held-out preference accuracy: how often a policy gives the chosen answer the higher log-prob.

The direct measure of what preference training teaches, on pairs it never saw (the ``validation``
split): the share of pairs with ``logp(chosen) > logp(rejected)``, both summed over response tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch

from damo import device
from damo.data.dataset import PreferenceDataset
from damo.models import load_model, load_processor
from damo.train.batch import collate_pairs
from damo.train.data import PAIR_COLUMNS
from damo.train.logps import PairLogps

VALIDATION_SPLIT = "validation"


def preference_accuracy(model_dir: Path, data: Path, *, batch_size: int, chunk_tokens: int,
                        precision: device.Precision = "auto", split: str = VALIDATION_SPLIT) -> float:
    """Share of ``split`` pairs of ``data`` on which the model at ``model_dir`` prefers chosen."""
    rows = PreferenceDataset(data).read(list(PAIR_COLUMNS), split=split).to_pylist()
    if not rows:
        raise ValueError(f"{data} has no {split!r} pairs to measure preference accuracy on")
    dev = device.choose_device()
    scorer = PairLogps(load_model(model_dir, precision).to(dev).eval(), chunk_tokens)
    processor = load_processor(model_dir)
    wins = 0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            chosen, rejected = scorer(collate_pairs(processor, rows[start:start + batch_size]).to(dev))
            wins += int((chosen > rejected).sum())
    return wins / len(rows)
