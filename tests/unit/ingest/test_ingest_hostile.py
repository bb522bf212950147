"""Ingest reads only regular files inside its source (issue 15, findings 4, 6 and 7).

A data file (jsonl, json, parquet) that is a symlink out of the source is refused exactly as an image
path that escapes is: named, never read, so a secret it points at reaches neither the dataset nor
``quarantine.parquet``. A FIFO is never opened (no hang). Ingest into a folder that already holds a
dataset is refused before anything in it changes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from damo.cli import main
from damo.config import load_config
from damo.ingest.records import IngestError
from damo.steps.ingest import IngestPaths, run
from tests.unit.ingest.conftest import good_row, png, rlaif_rows, write_parquet

TOKEN = "hf_SECRETtoken0123456789abcdef"


@pytest.fixture(autouse=True)
def never_hang() -> Iterator[None]:
    """A test that blocks (a FIFO opened for reading) fails after 60 s instead of hanging the suite."""
    def fail(*_: object) -> None:
        raise TimeoutError("ingest blocked")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _everything_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file()) if folder.exists() else b""


def _secret_outside(tmp_path: Path, name: str, content: bytes) -> Path:
    outside = tmp_path / "home" / name
    outside.parent.mkdir()
    outside.write_bytes(content)
    return outside


@pytest.mark.parametrize("name, content", [
    ("passwd.jsonl", b"root:x:0:0:root:/root:/bin/bash\n"),
    ("token.json", json.dumps([{"question": TOKEN, "chosen": 1}]).encode()),
])
def test_a_text_data_file_symlinked_out_of_the_source_is_refused_unread(tmp_path: Path, name: str,
                                                                       content: bytes) -> None:
    outside = _secret_outside(tmp_path, name, content)
    src = tmp_path / "src"
    src.mkdir()
    (src / name).symlink_to(outside)
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=rf"{name} is a symlink to {outside}, outside the source"):
        run(load_config(None, []), IngestPaths(source=str(src), out=out))
    assert not out.exists()  # nothing written, so nothing of the secret either
    assert TOKEN.encode() not in _everything_under(tmp_path / "out") and outside.read_bytes() == content


def test_a_parquet_symlinked_out_of_the_source_keeps_none_of_its_rows(tmp_path: Path) -> None:
    outside = write_parquet(tmp_path / "elsewhere" / "theirs.parquet", rlaif_rows(5))
    src = tmp_path / "src"
    write_parquet(src / "ours.parquet", rlaif_rows(3, start=100))
    (src / "theirs.parquet").symlink_to(outside)
    with pytest.raises(IngestError, match="theirs.parquet is a symlink"):
        run(load_config(None, []), IngestPaths(source=str(src), out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_symlink_that_stays_inside_the_source_is_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_parquet(src / "real" / "a.parquet", rlaif_rows(4))
    (src / "link.parquet").symlink_to(src / "real" / "a.parquet")
    config = load_config(None, ["ingest.dedupe=false"])
    result = run(config, IngestPaths(source=str(src), out=tmp_path / "out"))
    assert result["input_rows"] == 8


def test_a_fifo_in_the_source_is_refused_without_opening_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_parquet(src / "a.parquet", rlaif_rows(2))
    os.mkfifo(src / "b.jsonl")
    with pytest.raises(IngestError, match="b.jsonl is a FIFO"):
        run(load_config(None, []), IngestPaths(source=str(src), out=tmp_path / "out"))


def test_a_fifo_named_like_an_image_is_quarantined_unopened(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "images" / "ok.png").write_bytes(png())
    os.mkfifo(raw / "images" / "stuck.png")
    rows = [{**good_row(0), "image_path": "ok.png"}, {**good_row(1), "image_path": "stuck.png"}]
    (raw / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, ["ingest.image_folder=images", "ingest.validation_fraction=0"])
    result = run(config, IngestPaths(source=str(raw / "pairs.jsonl"), out=tmp_path / "out"))
    assert (result["kept"], result["quarantined_by_reason"]) == (1, {"image_not_a_regular_file": 1})


def test_ingest_into_an_existing_dataset_changes_nothing_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_parquet(tmp_path / "src" / "a.parquet", rlaif_rows(3))
    out = tmp_path / "out"
    assert main(["ingest", "--source", str(src), "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["ingest", "--source", str(src), "--out", str(out), "--set", "seed=7"]) == 1
    err = capsys.readouterr().err
    assert "already holds a dataset" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
