"""Checkpoint selection (train.select): which steps are candidates, the choice rule, atomic candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from damo.config import ConfigError, SelectConfig, load_config
from damo.train.select import (
    Candidate,
    SelectionError,
    candidate_dir,
    choose,
    effective_floor,
    is_candidate,
    save_candidate,
    select_model,
    selection_config,
)
from tests.unit.train.tiny import build_selection_images as selection_images

RULE = SelectConfig(benchmark="tiny_world", every=10, from_step=30, metric="tiny_world.extra_object_rate",
                    mode="min", floor={"tiny_world.well_formed": 0.9})


def candidate(step: int, extra: float, well_formed: float) -> Candidate:
    return Candidate(step, {"tiny_world.extra_object_rate": extra, "tiny_world.well_formed": well_formed})


def test_candidates_are_every_nth_step_from_the_first_and_always_the_last() -> None:
    steps = [done for done in range(1, 96) if is_candidate(done, 95, RULE)]
    assert steps == [30, 40, 50, 60, 70, 80, 90, 95]


def test_without_a_benchmark_no_step_is_a_candidate() -> None:
    assert not any(is_candidate(done, 50, SelectConfig()) for done in range(1, 51))


def test_the_best_metric_among_candidates_at_the_floor_wins() -> None:
    # Step 50 invents fewest objects but writes below the floor: step 40 is chosen, not 50 nor 30.
    candidates = [candidate(30, 0.20, 0.96), candidate(40, 0.10, 0.93), candidate(50, 0.05, 0.89)]
    assert choose(candidates, RULE).step == 40


def test_a_tie_goes_to_the_earlier_step_which_drifted_less() -> None:
    assert choose([candidate(30, 0.1, 0.95), candidate(40, 0.1, 0.95)], RULE).step == 30


def test_mode_max_picks_the_largest_metric() -> None:
    rule = RULE.model_copy(update={"metric": "tiny_world.well_formed", "mode": "max", "floor": {}})
    assert choose([candidate(30, 0.2, 0.91), candidate(40, 0.1, 0.97)], rule).step == 40


def test_no_candidate_at_the_floor_fails_with_every_candidates_values() -> None:
    with pytest.raises(SelectionError, match=r"step 30: tiny_world.well_formed=0.8500.*step 40"):
        choose([candidate(30, 0.2, 0.85), candidate(40, 0.1, 0.80)], RULE)


def test_a_metric_the_benchmark_does_not_measure_fails() -> None:
    with pytest.raises(SelectionError, match="not measured"):
        choose([Candidate(30, {"tiny_world.extra_object_rate": 0.1})], RULE)
    with pytest.raises(SelectionError, match="not measured"):
        choose([candidate(30, float("nan"), 0.95)], RULE)


def test_a_base_floor_holds_candidates_to_the_base_models_value_less_the_allowed_drop() -> None:
    """Base 0.95 well-formed, allowed drop 0.01: the floor rises from 0.90 to 0.94, so step 40 (0.93),
    chosen under the absolute floor alone, gives way to step 30; the higher of the two floors applies."""
    rule = RULE.model_copy(update={"base_floor": {"tiny_world.well_formed": 0.01}})
    floor = effective_floor(rule, {"tiny_world.well_formed": 0.95, "tiny_world.extra_object_rate": 0.4})
    assert floor == {"tiny_world.well_formed": pytest.approx(0.94)}
    candidates = [candidate(30, 0.20, 0.96), candidate(40, 0.10, 0.93)]
    assert choose(candidates, rule, floor).step == 30
    assert effective_floor(rule, {"tiny_world.well_formed": 0.85}) == {"tiny_world.well_formed": 0.9}
    with pytest.raises(SelectionError, match="base model's held-out metrics"):
        effective_floor(rule, None)
    with pytest.raises(SelectionError, match="not measured for the base model"):
        effective_floor(rule, {"tiny_world.extra_object_rate": 0.4})


def test_a_base_floor_allows_no_negative_drop_and_only_its_benchmarks_metrics() -> None:
    sets = ["train.select.benchmark=tiny_world", "train.select.metric=tiny_world.extra_object_rate"]
    with pytest.raises(ConfigError, match="allowed drop must be ≥ 0"):
        load_config("tiny", [*sets, 'train.select.base_floor={"tiny_world.well_formed":-0.1}'])
    with pytest.raises(ConfigError, match="not one of benchmark 'tiny_world'"):
        load_config("tiny", [*sets, 'train.select.base_floor={"pope.f1":0}'])


def test_a_killed_write_leaves_no_candidate_and_a_rewrite_replaces_one(tmp_path: Path) -> None:
    def fail(folder: Path) -> None:
        (folder / "model").mkdir()
        raise KeyboardInterrupt  # stands for the process being killed mid-write

    with pytest.raises(KeyboardInterrupt):
        save_candidate(tmp_path, 30, fail)
    assert not candidate_dir(tmp_path, 30).exists()

    def write(text: str) -> object:
        return lambda folder: ((folder / "model").mkdir(), (folder / "model" / "w").write_text(text))

    save_candidate(tmp_path, 30, write("first"))  # also clears the stale temporary folder
    save_candidate(tmp_path, 30, write("resumed"))
    assert (candidate_dir(tmp_path, 30) / "model" / "w").read_text() == "resumed"
    assert [p.name for p in (tmp_path / "candidates").iterdir()] == ["step-00000030"]


def test_a_chosen_candidate_whose_weights_were_pruned_fails_clearly(tmp_path: Path) -> None:
    """A rerun with another rule may choose a candidate an earlier run pruned: no silent other model."""
    import json

    config = load_config("tiny", ["train.select.benchmark=tiny_world", "train.select.data=/unused",
                                  "train.select.metric=tiny_world.extra_object_rate",
                                  "train.select.floor={}"])
    for step, extra in ((30, 0.1), (40, 0.2)):
        folder = candidate_dir(tmp_path, step)
        (folder / "eval").mkdir(parents=True)
        metrics = {"tiny_world": {"extra_object_rate": extra}}
        (folder / "eval" / "metrics.json").write_text(json.dumps(metrics))
    (candidate_dir(tmp_path, 40) / "model").mkdir()  # only the step an earlier rule chose kept weights
    with pytest.raises(SelectionError, match="step 30.*pruned"):
        select_model(config, tmp_path, tracker=None)
    assert not (tmp_path / "model").exists() and not (tmp_path / "selection.json").exists()


def test_candidates_are_evaluated_on_the_selection_data_only() -> None:
    config = load_config("tiny", ["pipeline.tiny_world_dir=/w", "evaluate.benchmarks=[tiny_world, pope]"])
    evaluation = selection_config(config)
    assert evaluation.evaluate.benchmarks == ["tiny_world"]
    assert evaluation.evaluate.data["tiny_world"] == "/w/selection"  # never /w/benchmark
    given = load_config("tiny", ["train.select.data=s3://b/held-out"])
    assert selection_config(given).evaluate.data["tiny_world"] == "s3://b/held-out"


def test_the_select_config_names_metrics_of_its_benchmark_and_its_data() -> None:
    with pytest.raises(ConfigError, match="not one of benchmark 'tiny_world'"):
        load_config("tiny", ["train.select.metric=pope.f1"])
    with pytest.raises(ConfigError, match="give the held-out data of 'object_halbench'"):
        load_config("tiny", ["train.select.benchmark=object_halbench",
                             "train.select.metric=object_halbench.chair_response", "train.select.floor={}"])


def test_training_with_selection_installs_the_chosen_candidate(tiny_reference_pairs: Path, tiny_llava: Path,
                                                               tmp_path: Path) -> None:
    import json

    from damo.steps.train import TrainPaths, run
    from tests.unit.train.conftest import fast_config

    sets = ["train.select.benchmark=tiny_world", f"train.select.data={selection_images(tmp_path / 'sel')}",
            "train.select.from_step=1", "train.select.every=2", "train.select.metric=tiny_world.avg_length",
            "train.select.mode=max", "train.select.floor={}", "evaluate.max_new_tokens=4",
            'train.select.base_floor={"tiny_world_greedy.well_formed":1.0}']  # recorded; passes all
    out = tmp_path / "out"
    result = run(fast_config(*sets), TrainPaths(data=tiny_reference_pairs, model=str(tiny_llava), out=out))
    record = json.loads((out / "selection.json").read_text())
    base = json.loads((out / "candidates" / "base" / "eval" / "metrics.json").read_text())
    assert record["base"] == {"tiny_world_greedy.well_formed": base["tiny_world_greedy"]["well_formed"]}
    assert record["floor"] == {"tiny_world_greedy.well_formed": pytest.approx(record["base"][
        "tiny_world_greedy.well_formed"] - 1.0)}
    assert "at least the base model's" in (out / "model" / "README.md").read_text()
    assert [c["step"] for c in record["candidates"]] == [1, 3, 4]  # from step 1, every 2, and the last
    lengths = {c["step"]: c["tiny_world.avg_length"] for c in record["candidates"]}
    assert record["step"] == min(s for s in lengths if lengths[s] == max(lengths.values()))
    assert result["selected_step"] == record["step"] and result["steps"] == 4
    chosen = candidate_dir(out, record["step"]) / "model" / "model.safetensors"
    assert (out / "model" / "model.safetensors").read_bytes() == chosen.read_bytes()
    assert f"after optimizer step {record['step']}" in (out / "model" / "README.md").read_text()
    answers = candidate_dir(out, 1) / "eval" / "answers.tiny_world.sampled.jsonl"
    assert len(answers.read_text().splitlines()) == 3 * 4  # 3 selection images × 4 samples
    # only the chosen candidate keeps its weights; every candidate keeps its answers and metrics
    kept = sorted(p.parent.name for p in (out / "candidates").glob("*/model"))
    assert kept == [f"step-{record['step']:08d}"]
    assert len(list((out / "candidates").glob("step-*/eval/metrics.json"))) == 3
    # a rerun on the same folder (a retried pipeline task) trains nothing, evaluates nothing again,
    # and chooses the same step from the recorded metrics
    before = answers.stat().st_mtime_ns
    again = run(fast_config(*sets), TrainPaths(data=tiny_reference_pairs, model=str(tiny_llava), out=out))
    assert again["selected_step"] == record["step"] and again["resumed_from"] == 4
    assert answers.stat().st_mtime_ns == before


def test_no_candidate_at_the_floor_fails_the_run_and_writes_no_model(
        tiny_reference_pairs: Path, tiny_llava: Path, tmp_path: Path) -> None:
    from damo.steps.train import TrainPaths, run
    from tests.unit.train.conftest import fast_config

    sets = ["train.select.benchmark=tiny_world", f"train.select.data={selection_images(tmp_path / 'sel')}",
            "train.select.from_step=2", "train.select.metric=tiny_world.extra_object_rate",
            "train.select.floor={tiny_world.well_formed: 1.01}", "evaluate.max_new_tokens=4"]
    out = tmp_path / "out"
    with pytest.raises(SelectionError, match="no candidate reached"):
        run(fast_config(*sets), TrainPaths(data=tiny_reference_pairs, model=str(tiny_llava), out=out))
    assert not (out / "model").exists() and not (out / "selection.json").exists()


def test_missing_held_out_data_fails_before_training(tiny_reference_pairs: Path, tiny_llava: Path,
                                                     tmp_path: Path) -> None:
    from damo.eval.items import BenchmarkDataError
    from damo.steps.train import TrainPaths, run
    from tests.unit.train.conftest import fast_config

    sets = ["train.select.benchmark=tiny_world", f"train.select.data={tmp_path / 'absent'}",
            "train.select.metric=tiny_world.extra_object_rate"]
    with pytest.raises(BenchmarkDataError, match="absent"):
        run(fast_config(*sets), TrainPaths(tiny_reference_pairs, str(tiny_llava), tmp_path / "o"))
    assert not (tmp_path / "o" / "checkpoints").exists()  # not one step was trained
