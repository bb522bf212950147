"""The one-command demo (`damo run --config tiny`) is set up to help visibly and honestly: it holds out
pairs, keeps the step chosen on held-out images (never the benchmark's), reports sampled rates first, and
promotes only a model whose answers stay well-formed."""

from __future__ import annotations

from damo.config import load_config


def test_the_demo_holds_out_pairs_and_trains_a_bounded_number_of_steps() -> None:
    config = load_config("tiny")
    assert config.ingest.validation_fraction > 0  # ingest re-splits: 0 would train on every pair
    # batches of 8 collapsed in one seed of a second world (benchmarks/tiny_effect.md)
    assert config.train.max_steps == 120 and config.train.lr_schedule == "constant"
    assert config.train.global_batch_size == 32
    assert config.tiny_world.omission_fraction > 0  # pairs that keep a true " and" (the grammar)


def test_the_demo_keeps_the_step_chosen_on_held_out_images_above_the_gate() -> None:
    config = load_config("tiny")
    select = config.train.select
    assert select.benchmark == "tiny_world" and select.data is None  # → the world's selection/ images
    assert (select.metric, select.mode) == ("tiny_world.extra_object_rate", "min")
    # the held-out floor sits above the promotion gate's: the two estimates differ by up to ~0.03
    assert select.floor["tiny_world.well_formed"] > config.registry.gate_floor["tiny_world.well_formed"]
    assert select.from_step < config.train.max_steps


def test_the_demo_reports_sampled_rates_first() -> None:
    decodings = load_config("tiny").evaluate.decoding["tiny_world"]
    assert decodings[0].do_sample and decodings[0].samples >= 4  # primary: group "tiny_world"
    assert not decodings[1].do_sample


def test_the_demo_promotes_only_well_formed_models() -> None:
    registry = load_config("tiny").registry
    assert registry.gate_floor == {"tiny_world.well_formed": 0.9}
    assert registry.gate  # and compares hallucination with the champion
