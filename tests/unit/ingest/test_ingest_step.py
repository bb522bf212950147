"""The ``ingest`` step and its CLI verb: one code path, outputs named by the contract."""

from __future__ import annotations

import json
from pathlib import Path

from damo.cli import main
from damo.config import load_config
from damo.data.dataset import PreferenceDataset
from damo.steps.ingest import IngestPaths, run
from tests.unit.ingest.conftest import rlaif_rows, write_parquet


def test_step_writes_dataset_quarantine_config_and_result(tmp_path: Path):
    src = write_parquet(tmp_path / "src" / "a.parquet", rlaif_rows(12))
    config = load_config(None, ["ingest.validation_fraction=0.25"])
    result = run(config, IngestPaths(source=str(src), out=tmp_path / "out"))
    out = tmp_path / "out"
    assert (out / "config.yaml").is_file() and (out / "quarantine.parquet").is_file()
    assert json.loads((out / "result.json").read_text()) == json.loads(json.dumps(dict(result)))
    dataset = PreferenceDataset(out, verify=True)
    assert dataset.manifest.reports["ingest"]["input_rows"] == 12 == result["kept"]
    assert sum(dataset.manifest.splits.values()) == 12


def test_cli_ingest_prints_the_result_and_reports_errors(tmp_path: Path, capsys):
    src = write_parquet(tmp_path / "src" / "a.parquet", rlaif_rows(3))
    assert main(["ingest", "--source", str(src), "--out", str(tmp_path / "out")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kept"] == 3
    assert main(["ingest", "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 1
    assert "missing does not exist" in capsys.readouterr().err
