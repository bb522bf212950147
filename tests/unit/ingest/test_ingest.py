"""Ingest: every input row ends in the dataset or the quarantine, with its reason; the counts add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from damo.config import IngestConfig
from damo.data.dataset import PreferenceDataset
from damo.ingest import IngestError, ingest
from damo.ingest.quarantine import QUARANTINE
from tests.unit.ingest.conftest import MIXED_EXPECTED, MIXED_GOOD, rlaif_rows, write_parquet


def test_mixed_faults_each_quarantined_with_its_reason_and_counts_add_up(mixed_jsonl: Path, tmp_path: Path):
    out = tmp_path / "ds"
    report = ingest(str(mixed_jsonl), out, IngestConfig(image_folder="images", max_image_pixels=1_000_000))

    quarantine = pq.read_table(out / QUARANTINE).to_pylist()
    by_reason: dict[str, int] = {}
    for row in quarantine:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    assert by_reason == MIXED_EXPECTED
    assert report["quarantined_by_reason"] == MIXED_EXPECTED
    assert report["kept"] == MIXED_GOOD
    assert report["input_rows"] == MIXED_GOOD + sum(MIXED_EXPECTED.values())
    assert report["input_rows"] == report["kept"] + report["quarantined"]

    dataset = PreferenceDataset(out, verify=True)
    assert len(dataset) == MIXED_GOOD
    assert dataset.manifest.reports["ingest"]["quarantined"] == sum(MIXED_EXPECTED.values())
    rows = dataset.read().to_pylist()
    assert sorted(r["question"] for r in rows) == sorted(f"What is shown in picture {i}?" for i in range(6))
    assert all(r["image"] and r["source"].startswith("pairs.jsonl#") for r in rows)
    assert {json.loads(r["origin"])["idx"] for r in rows} == set(range(MIXED_GOOD))
    # The quarantine names where each row came from and why, with the text readable.
    dup = next(r for r in quarantine if r["reason"] == "duplicate")
    assert "pairs.jsonl#0" in dup["detail"]
    non_utf8 = [r for r in quarantine if r["reason"] == "non_utf8_text"]
    assert all(r["question"] is not None for r in non_utf8)


def test_ids_are_stable_and_split_does_not_depend_on_row_order(tmp_path: Path):
    rows = rlaif_rows(40)
    cfg = IngestConfig(validation_fraction=0.3, split_seed=7)
    a = ingest(str(write_parquet(tmp_path / "a" / "x.parquet", rows)), tmp_path / "out_a", cfg)
    b = ingest(str(write_parquet(tmp_path / "b" / "x.parquet", rows[::-1])), tmp_path / "out_b", cfg)
    split_a = {r["id"]: r["split"] for r in PreferenceDataset(tmp_path / "out_a").iter_rows(["id", "split"])}
    split_b = {r["id"]: r["split"] for r in PreferenceDataset(tmp_path / "out_b").iter_rows(["id", "split"])}
    assert split_a == split_b
    assert a["splits"] == b["splits"]
    assert 0 < a["splits"]["validation"] < 40  # 30% of 40, give or take the hash
    other_seed = ingest(
        str(tmp_path / "a"), tmp_path / "out_c", IngestConfig(validation_fraction=0.3, split_seed=8)
    )
    split_c = {r["id"]: r["split"] for r in PreferenceDataset(tmp_path / "out_c").iter_rows(["id", "split"])}
    assert split_c.keys() == split_a.keys() and split_c != split_a
    assert other_seed["format"] == "rlaif_v"


def test_rlaif_v_parquet_folder_streams_in_batches_across_shards(tmp_path: Path):
    write_parquet(tmp_path / "src" / "part-000.parquet", rlaif_rows(10))
    write_parquet(tmp_path / "src" / "part-001.parquet", rlaif_rows(7, start=10))
    report = ingest(str(tmp_path / "src"), tmp_path / "out", IngestConfig(read_batch_rows=3, shard_rows=4))
    dataset = PreferenceDataset(tmp_path / "out", verify=True)
    assert report["kept"] == len(dataset) == 17
    assert len(dataset.manifest.shards) == 5  # 17 rows in shards of 4
    first = next(dataset.iter_rows())
    assert first["source"] == "part-000.parquet#0"
    assert json.loads(first["origin"])["ds_name"] == "RLAIF-V"


def _hf_dataset(rows: list[dict]) -> Any:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "chosen": datasets.Value("string"),
            "rejected": datasets.Value("string"),
            "idx": datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_list(
        [{k: r[k] for k in ("image", "question", "chosen", "rejected", "idx")} for r in rows],
        features=features,
    )


def test_hf_datasets_folder_is_read_from_its_arrow_files(tmp_path: Path):
    rows = rlaif_rows(5)
    _hf_dataset(rows).save_to_disk(str(tmp_path / "hf"))
    report = ingest(str(tmp_path / "hf"), tmp_path / "out", IngestConfig())
    assert report["format"] == "hf_datasets"
    assert report["kept"] == 5
    assert {r["question"] for r in PreferenceDataset(tmp_path / "out").iter_rows(["question"])} == {
        r["question"] for r in rows
    }


def test_hf_dataset_dict_test_split_becomes_validation(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    rows = rlaif_rows(6)
    split = datasets.DatasetDict({"train": _hf_dataset(rows[:4]), "test": _hf_dataset(rows[4:])})
    split.save_to_disk(str(tmp_path / "hf"))
    report = ingest(str(tmp_path / "hf"), tmp_path / "out", IngestConfig(validation_splits=["test"]))
    assert report["splits"] == {"train": 4, "validation": 2}
    for row in PreferenceDataset(tmp_path / "out").iter_rows(["split", "origin"]):
        hf_split = json.loads(row["origin"])["hf_split"]
        assert (hf_split, row["split"]) in {("train", "train"), ("test", "validation")}
    with pytest.raises(IngestError, match=r"names \['dev'\], not splits of source .*\['train', 'test'\]"):
        ingest(str(tmp_path / "hf"), tmp_path / "out2", IngestConfig(validation_splits=["dev"]))


def test_validation_splits_on_a_source_without_splits_is_refused(tmp_path: Path):
    write_parquet(tmp_path / "raw" / "part-0.parquet", rlaif_rows(2))
    with pytest.raises(IngestError, match="splits of an HF DatasetDict, but source .* is read as rlaif_v"):
        ingest(str(tmp_path / "raw"), tmp_path / "out", IngestConfig(validation_splits=["test"]))


def test_dama_json_list_with_image_folder_elsewhere(tmp_path: Path):
    from tests.unit.ingest.conftest import good_row, png

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(png((i * 50, 0, 0)))
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "dama.json").write_text(
        json.dumps([{**good_row(i), "image_path": f"{i}.png"} for i in range(3)])
    )
    report = ingest(
        str(tmp_path / "meta" / "dama.json"), tmp_path / "out", IngestConfig(image_folder="../imgs")
    )
    assert (report["format"], report["kept"], report["quarantined"]) == ("dama_json", 3, 0)


def test_missing_source_fails_naming_it(tmp_path: Path):
    with pytest.raises(IngestError, match=r"nowhere.*does not exist"):
        ingest(str(tmp_path / "nowhere"), tmp_path / "out", IngestConfig())


def test_unreadable_parquet_fails_naming_the_file(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.parquet").write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(IngestError, match="broken.parquet"):
        ingest(str(tmp_path / "src"), tmp_path / "out", IngestConfig())


def test_source_with_no_usable_pair_fails_and_keeps_the_quarantine(tmp_path: Path):
    rows = [{"question": "q", "chosen": "same", "rejected": "same", "image": b"junk"}] * 3
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bad.parquet")
    with pytest.raises(IngestError, match=r"bad.parquet.*no usable pair among 3 rows"):
        ingest(str(tmp_path / "bad.parquet"), tmp_path / "out", IngestConfig())
    assert pq.read_table(tmp_path / "out" / QUARANTINE).num_rows == 3
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unknown_layout_asks_for_a_format(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="set ingest.format"):
        ingest(str(tmp_path / "src"), tmp_path / "out", IngestConfig())


