"""Held-out preference measures: what preference training teaches, on pairs it never saw.

On the ``validation`` split, with log-probs summed over response tokens:
- ``accuracy``: share of pairs with ``logp_θ(chosen) > logp_θ(rejected)`` (the policy's own ranking);
- ``reward_accuracy``: share with a positive log-ratio margin
  ``h = [logp_θ(c) − logp_ref(c)] − [logp_θ(r) − logp_ref(r)]`` against the stored reference columns,
  ties counted half (so the reference model itself scores exactly 0.5): DPO's eval reward accuracy;
- ``margin``: mean ``logp_θ(chosen) − logp_θ(rejected)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from damo import device
from damo.contract import PAIR_COLUMNS, REFERENCE_COLUMNS, VALIDATION_SPLIT
from damo.data.dataset import DatasetError, PreferenceDataset
from damo.models import load_model, load_processor
from damo.train.batch import collate_pairs
from damo.train.data import reference_rejected_tokens
from damo.train.logps import PairLogps


def heldout_preference(model_dir: Path, data: Path, *, batch_size: int, chunk_tokens: int,
                       precision: device.Precision = "auto",
                       split: str = VALIDATION_SPLIT) -> dict[str, float]:
    """The measures above for the model at ``model_dir`` on the ``split`` pairs of ``data``."""
    dataset = PreferenceDataset(data)
    dataset.require(*REFERENCE_COLUMNS)
    rejected_tokens = reference_rejected_tokens(dataset)  # sum what the stored reference sums
    rows = dataset.read([*PAIR_COLUMNS, *REFERENCE_COLUMNS], split=split).to_pylist()
    if not rows:
        raise DatasetError(f"{data} has no {split!r} pairs to measure held-out preference on")
    dev = device.choose_device()
    scorer = PairLogps(load_model(model_dir, precision).to(dev).eval(), chunk_tokens)
    processor = load_processor(model_dir)
    chosen_parts, rejected_parts = [], []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = collate_pairs(processor, rows[start:start + batch_size], rejected_tokens)
            chosen, rejected = scorer(batch.to(dev))
            chosen_parts.append(chosen.double().cpu())
            rejected_parts.append(rejected.double().cpu())
    chosen, rejected = torch.cat(chosen_parts), torch.cat(rejected_parts)
    ref_chosen = torch.tensor([r[REFERENCE_COLUMNS[0]] for r in rows], dtype=torch.float64)
    ref_rejected = torch.tensor([r[REFERENCE_COLUMNS[1]] for r in rows], dtype=torch.float64)
    h = (chosen - ref_chosen) - (rejected - ref_rejected)
    return {
        "accuracy": float((chosen > rejected).double().mean()),
        "reward_accuracy": float(((h > 0).double() + 0.5 * (h == 0).double()).mean()),
        "margin": float((chosen - rejected).mean()),
        "pairs": float(len(rows)),
    }
