"""The built world folder: dataset contract, loadable models, benchmark, determinism by seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from damo.config import load_config
from damo.data.dataset import BASE_COLUMNS, PreferenceDataset
from damo.tinyworld import build
from damo.tinyworld.clip import load_clip_folder
from damo.tinyworld.hardness import classify
from damo.tinyworld.tokenizer import prompt
from damo.tinyworld.vocab import mentioned

QUICK = ("tiny_world.sft_steps=0", "tiny_world.clip_steps=0", "tiny_world.num_pairs=32",
         "tiny_world.eval_images=4", "tiny_world.selection_images=4")


def test_dataset_follows_the_contract(tiny_world_quick: Path) -> None:
    data = PreferenceDataset(tiny_world_quick / "data", verify=True)
    assert set(BASE_COLUMNS) <= set(data.columns)
    measured = {"hardness", "kind", "truth", "hallucinated", "swapped", "invented", "clip_margin",
                "sft_margin"}
    assert measured <= set(data.columns)
    assert len(data) == 64 and data.manifest.splits == {"train": 58, "validation": 6}
    rows = data.read().to_pylist()
    assert len({r["id"] for r in rows}) == 64
    assert {r["hardness"] for r in rows} <= {"easy", "hard"} and all(r["hardness"] for r in rows)
    for r in rows:  # hardness is the recorded margins, cut at tiny_world.hard_margin
        assert r["hardness"] == classify(r["clip_margin"], r["sft_margin"], hard_margin=1.0)
    assert all(Image.open(__import__("io").BytesIO(r["image"])).size == (48, 48) for r in rows)
    assert data.manifest.reports["tiny_world"]["hardness"]


def test_policy_loads_back_offline(tiny_world_quick: Path) -> None:
    model = AutoModelForImageTextToText.from_pretrained(tiny_world_quick / "policy")
    processor = AutoProcessor.from_pretrained(tiny_world_quick / "policy")
    image = Image.open(tiny_world_quick / "benchmark" / "images" / "twb-00000.png")
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What do you see?"}]}],
        add_generation_prompt=True)
    assert text == prompt("What do you see?")
    batch = processor(images=[image], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == batch["input_ids"].shape[1] + 3


def test_clip_folder_loads_with_open_clip(tiny_world_quick: Path) -> None:
    model, preprocess, tokenizer = load_clip_folder(tiny_world_quick / "clip")
    image = preprocess(Image.open(tiny_world_quick / "benchmark" / "images" / "twb-00000.png"))
    with torch.no_grad():
        fi = model.encode_image(image[None], normalize=True)
        ft = model.encode_text(tokenizer(["There is a red circle.", "a dog"]), normalize=True)
    assert (fi @ ft.T).shape == (1, 2)
    config = json.loads((tiny_world_quick / "clip" / "open_clip_config.json").read_text())
    assert set(config) == {"model_cfg", "preprocess_cfg"}


def test_load_clip_folder_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_clip_folder(tmp_path)


def test_benchmark_is_held_out_and_covered_by_the_vocabulary(tiny_world_quick: Path) -> None:
    bench = tiny_world_quick / "benchmark"
    items = [json.loads(line) for line in (bench / "tiny_world.jsonl").read_text().splitlines()]
    vocab = json.loads((bench / "vocabulary.json").read_text())["objects"]
    assert len(items) == 8
    pair_images = {hashlib.sha256(r["image"]).hexdigest()
                   for r in PreferenceDataset(tiny_world_quick / "data").iter_rows(["image"])}
    for item in items:
        png = (bench / item["image"]).read_bytes()
        assert hashlib.sha256(png).hexdigest() not in pair_images
        assert set(item["truth"]) <= set(vocab) and item["truth"]
        assert set(item) >= {"id", "image", "question", "truth"}
    for row in PreferenceDataset(tiny_world_quick / "data").iter_rows(["chosen", "rejected"]):
        words = {w for text in (row["chosen"], row["rejected"]) for w in text.lower().rstrip(".").split()}
        assert words - {"there", "is", "a", "and"} <= set(vocab), words
        assert mentioned(row["rejected"])


def test_report_and_world_record_what_was_built(tiny_world_quick: Path) -> None:
    report = json.loads((tiny_world_quick / "report.json").read_text())
    world = json.loads((tiny_world_quick / "world.json").read_text())
    assert report["pairs"] == {"train": 58, "validation": 6}
    assert 0 <= report["policy"]["sampled"]["chair_s"] <= 1
    assert 0 < report["clip"]["clip_retrieval_chance"] < 1
    assert world["seed"] == 0 and world["tiny_world"]["num_pairs"] == 64


def _digests(folder: Path) -> dict[str, str]:
    skip = {"report.json"}  # holds the build time
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    config = load_config("tiny", QUICK)
    build(config, tmp_path / "a")
    build(config, tmp_path / "b")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    build(load_config("tiny", (*QUICK, "seed=1")), tmp_path / "c")
    a, c = _digests(tmp_path / "a"), _digests(tmp_path / "c")
    assert a["data/shard-00000.parquet"] != c["data/shard-00000.parquet"]


def test_same_bytes_whatever_the_callers_thread_count(tmp_path: Path) -> None:
    """Trained weights depend on torch's thread count; the build pins it (and restores the caller's)."""
    config = load_config("tiny", ("tiny_world.sft_steps=20", "tiny_world.clip_steps=5",
                                  *QUICK[2:]))
    before = torch.get_num_threads()
    try:
        digests = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            build(config, tmp_path / str(threads))
            assert torch.get_num_threads() == threads
            digests.append(_digests(tmp_path / str(threads)))
    finally:
        torch.set_num_threads(before)
    assert digests[0] == digests[1]


def test_build_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        build(load_config("tiny", QUICK), tmp_path)


def test_a_world_whose_answers_do_not_fit_the_clip_context_is_refused_before_training(tmp_path: Path) -> None:
    # chosen noise adds an object: the longest answers take 18 tokens, the default context is 16
    with pytest.raises(ValueError, match="16-token context .*clip_context_length"):
        build(load_config("tiny", (*QUICK, "tiny_world.chosen_noise=0.4")), tmp_path / "w")
    assert not (tmp_path / "w" / "policy").exists()  # refused before the policy was built


def test_a_world_with_chosen_noise_records_the_invented_objects(tmp_path: Path) -> None:
    build(load_config("tiny", (*QUICK, "tiny_world.chosen_noise=0.5", "tiny_world.clip_context_length=19")),
          tmp_path / "w")
    rows = PreferenceDataset(tmp_path / "w" / "data").read().to_pylist()
    invented = [r for r in rows if r["invented"]]
    assert invented and len(invented) < len(rows)
    for r in invented:
        assert r["invented"] in mentioned(r["chosen"]) and r["invented"] in mentioned(r["rejected"])
        assert r["invented"] not in r["truth"]


def test_the_shape_noise_stage_trains_the_language_model_only(tmp_path: Path) -> None:
    """Stage two (shape_noise) leaves the stage-one tower and projector as they were: the policy learns
    to doubt shapes, the image tokens keep encoding them."""
    first = ("tiny_world.sft_steps=5", *QUICK[1:])
    build(load_config("tiny", first), tmp_path / "one")
    build(load_config("tiny", (*first, "tiny_world.shape_noise=0.5", "tiny_world.shape_noise_steps=5")),
          tmp_path / "two")
    one, two = (AutoModelForImageTextToText.from_pretrained(tmp_path / w / "policy").state_dict()
                for w in ("one", "two"))
    perception = [k for k in one if "vision_tower" in k or "multi_modal_projector" in k]
    language = [k for k in one if "language_model" in k or "lm_head" in k]
    assert perception and language
    assert all(torch.equal(one[k], two[k]) for k in perception)
    assert not all(torch.equal(one[k], two[k]) for k in language)
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert "shape_noise_final_loss" in report["policy"]


@pytest.mark.parametrize("sets", [("tiny_world.shape_noise=0.3",), ("tiny_world.shape_noise_steps=100",)])
def test_shape_noise_without_its_stage_is_refused(sets: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="shape_noise and shape_noise_steps go together"):
        load_config("tiny", sets)
