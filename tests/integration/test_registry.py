"""`damo register` / `damo pull` against a real MLflow server whose model files live in real SeaweedFS.

A registered version's files are all in the bucket and verified before the version exists; its tags
and model card say what it is; `candidate` always moves, `champion` only through the gate; a pulled
folder loads with transformers and is byte-identical to what was registered.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from damo import registry, storage
from damo.config import DamoConfig
from damo.data.dataset import DatasetWriter, Manifest
from damo.models import resolve_model
from damo.stack import StackEnv
from damo.steps.pull import PullPaths
from damo.steps.pull import run as pull_step
from damo.steps.register import RegisterPaths
from damo.steps.register import run as register_step
from damo.tracking import client as registry_client

pytestmark = pytest.mark.integration


def _config(base: DamoConfig, name: str, gate: dict[str, str] | None = None) -> DamoConfig:
    config = base.model_copy(deep=True)
    config.registry.model_name = name
    config.registry.gate = gate or {}  # type: ignore[assignment]
    config.registry.gate_floor = {}  # the tiny preset's quality floor: only where a test sets one
    return config


def _fake_model(folder: Path, payload: bytes) -> Path:
    """A folder that passes as a HF model for registration purposes (config.json + one weight file)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(payload)
    return folder


def _metrics(path: Path, accuracy: float) -> Path:
    path.write_text(json.dumps({"tiny_world": {"accuracy": accuracy, "chair_s": 1 - accuracy},
                                "benchmark": "tiny_world"}))
    return path


def _tiny_llava(folder: Path) -> Path:
    """A real (tiny, random) LLaVA checkpoint as transformers saves it."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, image_size=16, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2)
    LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=63)
                                  ).save_pretrained(folder)
    return folder


def _tiny_dataset(folder: Path) -> Path:
    writer = DatasetWriter(folder)
    for i in range(3):
        writer.write({"id": str(i), "split": "train", "image": b"png", "question": "what?",
                      "chosen": "a red square", "rejected": "a red square and a cat", "source": "test"})
    writer.close()
    return folder


def test_register_then_pull_loads_with_from_pretrained(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText

    config = _config(stack_config, "tiny-policy", {"tiny_world.accuracy": "max"})
    policy, data = _tiny_llava(tmp_path / "policy"), _tiny_dataset(tmp_path / "data")
    result = register_step(config, RegisterPaths(model=policy, metrics=_metrics(tmp_path / "m.json", 0.5),
                                                 data=data, out=tmp_path / "register"))

    assert (result["name"], result["version"]) == ("tiny-policy", "1")
    assert result["aliases"] == ["candidate", "champion"]
    assert result["model_uri"] == "models:/tiny-policy/1"
    stored = {u[len(result["source"]) + 1:] for u in storage.list_objects(result["source"] + "/")}
    local = {str(p.relative_to(policy)) for p in policy.rglob("*") if p.is_file()}
    assert stored == local | {registry.FILES_MANIFEST}

    mv = registry_client(stack_environ.tracking_uri).get_model_version("tiny-policy", "1")
    assert mv.source == result["source"] and mv.run_id == result["run_id"]
    assert mv.tags["damo.data_manifest_checksum"] == Manifest.load(data).checksum
    assert mv.tags["damo.arm"] == config.train.loss.arm
    # the tiny preset's loss: no NLL anchor, rejected answers summed through their fork
    assert config.train.loss.rejected_tokens == "through_fork"
    assert mv.tags["damo.objective"] == "dama (rejected answers through their fork)"
    assert mv.tags["damo.metric.tiny_world.accuracy"] == "0.5"
    assert mv.tags["damo.gate"] == "passed"
    weights_sha = hashlib.sha256((policy / "model.safetensors").read_bytes()).hexdigest()
    assert "# tiny-policy version 1" in mv.description and weights_sha in mv.description
    assert (tmp_path / "register" / "model_card.md").read_text() == mv.description
    assert json.loads((tmp_path / "register" / "result.json").read_text())["version"] == "1"

    out = tmp_path / "pulled"
    pulled = pull_step(config, PullPaths(model_uri="models:/tiny-policy@champion", out=out))
    assert pulled["version"] == "1" and pulled["files"] == len(local)
    original = AutoModelForImageTextToText.from_pretrained(policy)
    loaded = AutoModelForImageTextToText.from_pretrained(out)
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name

    by_number = pull_step(config, PullPaths(model_uri="models:/tiny-policy/1", out=tmp_path / "by-number"))
    assert by_number["source"] == pulled["source"]
    weights = (policy / "model.safetensors").read_bytes()
    assert (tmp_path / "by-number" / "model.safetensors").read_bytes() == weights


def test_champion_moves_only_when_the_gate_passes(stack_environ: StackEnv, stack_config: DamoConfig,
                                                  tmp_path: Path) -> None:
    config = _config(stack_config, "gated", {"tiny_world.accuracy": "max", "tiny_world.chair_s": "min"})
    client = registry_client(stack_environ.tracking_uri)
    aliases = []
    for i, accuracy in enumerate([0.5, 0.4, 0.6]):
        model = _fake_model(tmp_path / f"m{i}", bytes([i]) * 1000)
        metrics = _metrics(tmp_path / f"{i}.json", accuracy)
        result = register_step(config, RegisterPaths(model=model, metrics=metrics))
        aliases.append(result["aliases"])
        assert client.get_model_version_by_alias("gated", "candidate").version == result["version"]
    assert aliases == [["candidate", "champion"], ["candidate"], ["candidate", "champion"]]
    assert client.get_model_version_by_alias("gated", "champion").version == "3"
    v2 = client.get_model_version("gated", "2")
    assert v2.tags["damo.gate"] == "failed" and "worse than champion v1" in v2.tags["damo.gate_reason"]

    ungated = _config(stack_config, "ungated")
    result = register_step(ungated, RegisterPaths(model=tmp_path / "m0"))
    assert result["aliases"] == ["candidate"] and "registry.gate is empty" in result["gate"]


def test_a_model_that_hallucinates_less_but_writes_worse_is_not_promoted(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path) -> None:
    config = _config(stack_config, "guarded", {"tiny_world.chair_s": "min"})
    config.registry.gate_floor = {"tiny_world.well_formed": 0.9}
    client = registry_client(stack_environ.tracking_uri)
    results = []
    for i, (chair_s, well_formed) in enumerate([(0.3, 0.95), (0.1, 0.6)]):
        metrics = tmp_path / f"{i}.json"
        metrics.write_text(json.dumps({"tiny_world": {"chair_s": chair_s, "well_formed": well_formed}}))
        model = _fake_model(tmp_path / f"m{i}", bytes([i]) * 100)
        results.append(register_step(config, RegisterPaths(model=model, metrics=metrics)))
    assert [r["aliases"] for r in results] == [["candidate", "champion"], ["candidate"]]
    assert "quality floor" in results[1]["gate"] and "well_formed 0.6 < 0.9" in results[1]["gate"]
    assert client.get_model_version_by_alias("guarded", "champion").version == results[0]["version"]
    assert client.get_model_version("guarded", results[1]["version"]).tags["damo.gate"] == "failed"


def test_pull_refuses_a_version_whose_stored_file_was_altered(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path) -> None:
    config = _config(stack_config, "tampered")
    model = _fake_model(tmp_path / "m", b"\x01" * 4096)
    result = register_step(config, RegisterPaths(model=model))
    bucket, key = storage.split_s3_uri(result["source"] + "/model.safetensors")
    storage.s3_client().put_object(Bucket=bucket, Key=key, Body=b"\x02" * 4096)  # same size, other bytes
    out = tmp_path / "out"
    out.mkdir()
    (out / registry.PULL_MARKER).write_text("{}")  # an earlier pull: pull may replace it, once verified
    (out / "keep.txt").write_text("previous pull")
    with pytest.raises(registry.RegistryError, match="sha256 differs"):
        pull_step(config, PullPaths(model_uri="models:/tampered@candidate", out=out))
    assert (out / "keep.txt").read_text() == "previous pull"  # the old folder is left untouched
    assert not list(tmp_path.glob(".out.partial*"))
    with pytest.raises(registry.RegistryError, match="no such registered model version"):
        pull_step(config, PullPaths(model_uri="models:/tampered@champion", out=out))


def test_a_step_resolves_models_uris_through_the_verified_pull(
        stack_environ: StackEnv, stack_config: DamoConfig, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``models:/`` inside a step (train, reference, evaluate) is ``damo pull``: same sha256 check,
    the configured tracking URI (not MLflow's global one, which is unset here)."""
    config = _config(stack_config, "resolved")
    result = register_step(config, RegisterPaths(model=_fake_model(tmp_path / "m", b"\x03" * 2048)))
    config.tracking.uri = stack_environ.tracking_uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    found = resolve_model("models:/resolved@candidate", config, cache_dir=tmp_path / "cache")
    assert (found / "model.safetensors").read_bytes() == b"\x03" * 2048
    bucket, key = storage.split_s3_uri(result["source"] + "/model.safetensors")
    storage.s3_client().put_object(Bucket=bucket, Key=key, Body=b"\x04" * 2048)
    with pytest.raises(registry.RegistryError, match="sha256 differs"):
        resolve_model("models:/resolved@candidate", config, cache_dir=tmp_path / "cache2")
