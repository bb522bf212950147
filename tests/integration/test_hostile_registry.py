"""`damo pull` against a hostile store and a careless `--out` (issue 15, findings 2 and 3).

The anchor of verification is the manifest hash recorded on the MLflow model version at
registration: a store that rewrites a weight file and ``damo-files.json`` together, or slips in an
unlisted file, is caught, named, and nothing reaches ``--out``. ``--out`` never deletes what damo did
not write: not ``.``, not a parent of the working folder, not a folder of unrelated files (unless
``--force``). Steps that take a ``models:/`` model go through the same check.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from damo import models, registry, storage
from damo.cli import main
from damo.config import DamoConfig
from damo.stack import StackEnv
from damo.steps.pull import PullPaths
from damo.steps.pull import run as pull_step
from damo.steps.register import RegisterPaths
from damo.steps.register import run as register_step

pytestmark = pytest.mark.integration


def _registered(config: DamoConfig, name: str, folder: Path) -> dict:
    config = config.model_copy(deep=True)
    config.registry.model_name = name
    config.registry.gate = {}  # type: ignore[assignment]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"\x01" * 4096)
    return register_step(config, RegisterPaths(model=folder))


def _put(uri: str, body: bytes) -> None:
    bucket, key = storage.split_s3_uri(uri)
    storage.s3_client().put_object(Bucket=bucket, Key=key, Body=body)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_rewriting_a_weight_and_the_manifest_together_is_caught_by_the_registry_hash(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path) -> None:
    result = _registered(stack_config, "rewritten", tmp_path / "m")
    intact = models.resolve_model("models:/rewritten@candidate", stack_config, tmp_path / "cache0")  # steps
    assert (intact / "model.safetensors").read_bytes() == b"\x01" * 4096
    forged = b"\x66" * 4096
    manifest = {"files": {"config.json": {"size": (tmp_path / "m/config.json").stat().st_size,
                                          "sha256": registry.sha256_file(tmp_path / "m/config.json")},
                          "model.safetensors": {"size": 4096,
                                                "sha256": hashlib.sha256(forged).hexdigest()}},
                "total_bytes": 0}
    _put(result["source"] + "/model.safetensors", forged)
    _put(result["source"] + "/" + registry.FILES_MANIFEST, json.dumps(manifest).encode())
    with pytest.raises(registry.RegistryError, match="differs from the manifest recorded in MLflow"):
        pull_step(stack_config, PullPaths(model_uri="models:/rewritten@candidate", out=tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial*"))
    with pytest.raises(registry.RegistryError, match="differs from the manifest recorded in MLflow"):
        models.resolve_model("models:/rewritten@candidate", stack_config, tmp_path / "cache")  # steps


def test_an_unlisted_file_in_the_store_is_refused_and_named(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path) -> None:
    result = _registered(stack_config, "extra-file", tmp_path / "m")
    _put(result["source"] + "/tokenizer_config.py", b"import os; os.system('id')")
    with pytest.raises(registry.RegistryError, match=r"tokenizer_config\.py: not in the registered files"):
        pull_step(stack_config, PullPaths(model_uri="models:/extra-file/1", out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_pull_out_never_deletes_what_damo_did_not_write(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _registered(stack_config, "careful", tmp_path / "m")
    work = tmp_path / "work" / "project"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    (tmp_path / "work" / "other.txt").write_text("also mine")
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    before = _tree(tmp_path / "work"), _tree(unrelated)
    uri = "models:/careful@candidate"
    for out, why in ((".", "working folder"), ("..", "working folder"), (str(unrelated), "--force")):
        for force in ([], ["--force"]) if out != str(unrelated) else ([],):
            assert main(["pull", uri, "--out", out, *force]) == 1
            assert why in capsys.readouterr().err
    assert (_tree(tmp_path / "work"), _tree(unrelated)) == before

    assert main(["pull", uri, "--out", str(tmp_path / "fresh")]) == 0
    assert main(["pull", uri, "--out", str(tmp_path / "fresh")]) == 0  # an earlier pull may be replaced
    assert main(["pull", uri, "--out", str(unrelated), "--force"]) == 0
    assert (unrelated / "model.safetensors").read_bytes() == b"\x01" * 4096
    assert not (unrelated / "thesis.tex").exists()


@pytest.mark.parametrize("extra, match", [
    (["--name", ""], "model name '' is not allowed"),
    (["--name", "a/b"], "model name 'a/b' is not allowed"),
    (["--name", "x@y"], "model name 'x@y' is not allowed"),
    (["--name", "ok-name", "--data", "BAD"], "--data BAD: not a readable preference dataset"),
    (["--name", "ok-name", "--metrics", "metrics.json"], "metrics.json: not JSON"),
])
def test_register_checks_every_input_before_uploading_anything(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], extra: list[str], match: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\x01" * 1024)
    store = f"s3://{stack_config.stack.bucket}/models"
    before = storage.list_objects(store + "/")
    code = main(["register", "--model", str(model), *extra])
    err = capsys.readouterr().err
    assert code == 1 and match in err and "Traceback" not in err
    assert storage.list_objects(store + "/") == before  # no orphan upload
