"""The data schedule: every pair once per epoch, ranks disjoint, a pure function of (seed, step)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from damo.config import load_config
from damo.data.dataset import PreferenceDataset
from damo.train.data import TrainDataError, TrainRows, make_schedule, resolve_delta_mean


def schedule(world: int = 2, **train: object):
    settings = {"global_batch_size": 8, "micro_batch_size": 2, **train}
    overrides = [f"train.{k}={v}" for k, v in settings.items()]
    return make_schedule(load_config(None, [*overrides, f"train.num_processes={world}"]).train,
                         num_rows=37, world_size=world, seed=3)


def test_one_epoch_visits_each_pair_at_most_once_and_drops_the_ragged_tail() -> None:
    s = schedule(epochs=1)
    assert s.steps_per_epoch == 4 and s.total_steps == 4 and s.gradient_accumulation == 2
    seen = torch.cat([s.step_indices(step) for step in range(s.steps_per_epoch)])
    assert len(seen) == 32 and len(set(seen.tolist())) == 32


def test_ranks_take_disjoint_slices_of_each_micro_batch() -> None:
    s = schedule()
    micro = s.micro_indices(step=1, micro=1)
    parts = [micro[s.rank_slice(r)] for r in range(2)]
    assert torch.equal(torch.cat(parts), micro)
    assert not set(parts[0].tolist()) & set(parts[1].tolist())


def test_the_schedule_is_reproducible_and_reshuffles_each_epoch() -> None:
    a, b = schedule(epochs=3), schedule(epochs=3)
    assert torch.equal(a.step_indices(5), b.step_indices(5))
    assert not torch.equal(a.step_indices(0), a.step_indices(a.steps_per_epoch))


def test_file_order_when_shuffle_is_off() -> None:
    s = schedule(shuffle=False)
    assert s.step_indices(1).tolist() == list(range(8, 16))


def test_max_steps_overrides_epochs() -> None:
    assert schedule(epochs=1, max_steps=9).total_steps == 9


def test_missing_reference_columns_name_the_step_to_run(tiny_pairs: Path) -> None:
    with pytest.raises(TrainDataError, match="damo reference"):
        TrainRows(PreferenceDataset(tiny_pairs), need_reference=True, need_delta=True)


def test_delta_mean_comes_from_the_manifest_unless_pinned(tiny_pairs: Path) -> None:
    dataset = PreferenceDataset(tiny_pairs)
    value, source = resolve_delta_mean(load_config(None).train, dataset)
    assert value == dataset.manifest.statistics["delta_mean"]["value"]
    assert "manifest.json" in source
    pinned = load_config(None, ["train.loss.delta_mean=0.0482190464911681"]).train
    assert resolve_delta_mean(pinned, dataset)[0] == pytest.approx(0.0482190464911681)
