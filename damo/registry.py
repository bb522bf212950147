"""Registered model versions in MLflow 3 whose files live in S3: register, promote, pull.

Registering a HF model folder (:func:`register`):

1. the bucket is checked (credentials, endpoint) before anything is sent;
2. every file is hashed (sha256, and the S3 ETag its multipart parts will produce), uploaded under
   ``<registry.store_uri>/<name>/<run id>/`` — multipart above ``registry.multipart_threshold_mb``,
   parts sent by ``registry.max_concurrency`` threads, so multi-GB safetensors shards stream — and
   **verified**: the stored size and the server-computed ETag must match the local file;
3. ``damo-files.json`` (path → size, sha256) is uploaded and verified last;
4. only then is the model version created (source = that prefix, run = the ``register`` MLflow run),
   with tags (files manifest and data manifest checksums, arm, base model, metrics), a model card
   as its description, the alias ``candidate``, and ``champion`` when the promotion gate passes.

A failure in 1–3 (store down, wrong credentials, corrupted upload) raises :class:`RegistryError`
before step 4, removes what it can of the partial upload, and marks the MLflow run FAILED: no model
version ever points at missing or unverified files. A rerun uploads under a new run's prefix; what
could not be removed (the store was gone) is found and deleted later by ``damo prune``
(:mod:`damo.registry_gc`).

Pulling (:func:`pull`): ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` → the version's files in
a folder that ``from_pretrained`` loads, each checked against ``damo-files.json``; the folder is
written beside ``out`` and moved into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from damo import storage
from damo.config import DamoConfig
from damo.data.dataset import Manifest, sha256_file
from damo.errors import DamoError
from damo.mlflow_tracker import MlflowTracker, flatten, registry_client
from damo.model_card import gate_decision, model_card
from damo.tracking import open_tracker, tracking_uri

log = logging.getLogger(__name__)

FILES_MANIFEST = "damo-files.json"
CANDIDATE, CHAMPION = "candidate", "champion"
METRIC_TAG = "damo.metric."
URI_FORMS = "models:/NAME@ALIAS or models:/NAME/VERSION"


class RegistryError(DamoError, RuntimeError):
    """Registering or pulling a model failed; the message says what and that nothing half-made remains."""


def require_uri(config: DamoConfig) -> str:
    uri = tracking_uri(config)
    if uri is None:
        raise RegistryError("the model registry needs an MLflow tracking URI: set tracking.uri or "
                            "MLFLOW_TRACKING_URI, or start the local stack with `damo stack up`")
    return uri


def store_uri(config: DamoConfig) -> str:
    return (config.registry.store_uri or f"s3://{config.stack.bucket}/models").rstrip("/")


def model_files(folder: Path) -> list[str]:
    """Relative paths of the regular files of a HF model folder, sorted; it must hold config.json."""
    if not (folder / "config.json").is_file():
        raise RegistryError(f"{folder} is not a HF model folder: config.json is missing")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def load_metrics(path: Path | None) -> dict[str, float]:
    """The numeric leaves of a metrics JSON, with flattened keys (``tiny_world.chair_s``)."""
    if path is None:
        return {}
    if not path.is_file():
        raise RegistryError(f"metrics file {path} does not exist")
    flat = flatten(json.loads(path.read_text()))
    return {k: float(v) for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}


# --------------------------------------------------------------------------- upload + verify
def _transfer(config: DamoConfig) -> Any:
    reg = config.registry
    return storage.transfer_config(reg.multipart_threshold_mb, reg.multipart_chunk_mb, reg.max_concurrency)


def upload_verified(folder: Path, files: list[str], prefix: str, config: DamoConfig,
                    progress: Callable[[int], None] | None = None) -> dict[str, storage.Digest]:
    """Upload ``files`` under ``prefix`` and check each stored object; StorageError on any fault."""
    transfer = _transfer(config)
    client = storage.s3_client()
    digests: dict[str, storage.Digest] = {}
    for rel in files:
        digests[rel] = storage.digest(folder / rel, transfer)
        uri = f"{prefix}/{rel}"
        storage.upload_file(folder / rel, uri, transfer, client, progress)
        storage.verify_object(uri, digests[rel], client)
        log.info("uploaded and verified %s (%d bytes)", uri, digests[rel].size)
    return digests


def _upload_as(path: Path, uri: str, config: DamoConfig) -> None:
    transfer = _transfer(config)
    storage.upload_file(path, uri, transfer)
    storage.verify_object(uri, storage.digest(path, transfer))


def _files_manifest(digests: Mapping[str, storage.Digest]) -> dict[str, Any]:
    return {"files": {rel: {"size": d.size, "sha256": d.sha256} for rel, d in digests.items()},
            "total_bytes": sum(d.size for d in digests.values())}


def _discard(prefix: str) -> None:
    """Best effort: remove a failed attempt's objects (no model version refers to them anyway)."""
    try:
        removed = storage.delete_prefix(prefix)
        log.info("removed %d objects and unfinished uploads of the failed upload under %s", removed, prefix)
    except storage.StorageError as err:
        log.warning("could not remove the partial upload under %s (%s); no model version refers to it",
                    prefix, err)


def _upload_all(folder: Path, prefix: str, config: DamoConfig,
                progress: Callable[[int], None] | None) -> tuple[dict[str, storage.Digest], dict[str, Any]]:
    files = model_files(folder)
    try:
        storage.check_bucket(prefix)  # wrong credentials or endpoint: fail before sending anything
    except storage.StorageError as err:
        raise RegistryError(f"registering {folder}: nothing was uploaded and no model version was created: "
                            f"{err}") from err
    try:
        digests = upload_verified(folder, files, prefix, config, progress)
        manifest = _files_manifest(digests)
        with tempfile.TemporaryDirectory() as tmp:
            manifest_path = Path(tmp) / FILES_MANIFEST
            manifest_path.write_text(json.dumps(manifest, indent=2))
            _upload_as(manifest_path, f"{prefix}/{FILES_MANIFEST}", config)
    except storage.StorageError as err:
        _discard(prefix)
        raise RegistryError(f"registering {folder} failed while uploading to {prefix}; "
                            f"no model version was created: {err}") from err
    return digests, manifest


# --------------------------------------------------------------------------- register
def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name)
        except MlflowException:
            client.get_registered_model(name)  # created concurrently; anything else re-raises here


def _champion(client: Any, name: str) -> Any:
    """The version holding ``champion``, or None (no such model or alias; an auth or server error
    raises, it must never read as "no champion")."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _version_tags(config: DamoConfig, data: Path | None, metrics: Mapping[str, float],
                  manifest: Mapping[str, Any]) -> dict[str, str]:
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    tags = {
        "damo.arm": config.train.loss.arm,
        "damo.base_model": config.pipeline.base_model or f"{config.pipeline.tiny_world_dir}/policy",
        "damo.files_manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "damo.total_bytes": str(manifest["total_bytes"]),
        "damo.num_files": str(len(manifest["files"])),
    }
    if data is not None:
        tags["damo.data_manifest_checksum"] = Manifest.load(data).checksum
    return tags | {f"{METRIC_TAG}{k}": repr(v) for k, v in metrics.items()}


def register(config: DamoConfig, model_dir: Path, metrics_path: Path | None = None,
             data_dir: Path | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Upload + verify ``model_dir``, then create the model version and set its aliases."""
    require_uri(config)
    name = config.registry.model_name
    metrics = load_metrics(metrics_path)
    with open_tracker(config, "register") as tracker:
        if not isinstance(tracker, MlflowTracker):
            raise RegistryError("the register step needs an MLflow tracker")
        prefix = f"{store_uri(config)}/{name}/{tracker.mlflow_run_id}"
        digests, manifest = _upload_all(model_dir, prefix, config, progress)
        tags = _version_tags(config, data_dir, metrics, manifest)
        client = tracker.client
        champion = _champion(client, name)
        _ensure_registered_model(client, name)
        mv = client.create_model_version(name, prefix, run_id=tracker.mlflow_run_id, tags=tags)
        aliases = [CANDIDATE]
        client.set_registered_model_alias(name, CANDIDATE, mv.version)
        champion_metrics = _tag_metrics(champion.tags) if champion is not None else None
        passed, reason = gate_decision(config.registry.gate, metrics, champion_metrics,
                                       champion.version if champion is not None else None,
                                       config.registry.gate_floor)
        if passed:
            client.set_registered_model_alias(name, CHAMPION, mv.version)
            aliases.append(CHAMPION)
        client.set_model_version_tag(name, mv.version, "damo.gate", "passed" if passed else "failed")
        client.set_model_version_tag(name, mv.version, "damo.gate_reason", reason)
        card = model_card(name, str(mv.version), prefix, tags, metrics, digests, aliases, reason)
        client.update_model_version(name, mv.version, description=card)
        tracker.log_metrics(metrics)
        tracker.set_tags({"damo.model_name": name, "damo.model_version": str(mv.version)})
        tracker.log_text(card, "model_card.md")
    log.info("registered %s version %s (%s), aliases %s: %s", name, mv.version, prefix, aliases, reason)
    return {"model_uri": f"models:/{name}/{mv.version}", "name": name, "version": str(mv.version),
            "aliases": aliases, "source": prefix, "run_id": tracker.mlflow_run_id, "gate": reason,
            "files": len(digests), "total_bytes": manifest["total_bytes"], "model_card": card}


def _tag_metrics(tags: Mapping[str, str]) -> dict[str, float]:
    return {k[len(METRIC_TAG):]: float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}


# --------------------------------------------------------------------------- pull
def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` → (name, alias, None); ``models:/NAME/3`` → (name, None, "3")."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"{uri!r} is not a registry URI: expected {URI_FORMS}")
    body = uri[len("models:/"):].strip("/")
    if "@" in body:
        name, alias = body.rsplit("@", 1)
        if name and alias:
            return name, alias, None
    elif "/" in body:
        name, version = body.rsplit("/", 1)
        if name and version.isdigit():
            return name, None, version
    raise RegistryError(f"{uri!r}: expected {URI_FORMS}")


def resolve_version(client: Any, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(uri)
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise RegistryError(f"{uri}: no such registered model version ({err.message})") from err


def _fetch(source: str, dest: Path) -> None:
    if storage.is_s3(source):
        client = storage.s3_client()
        for obj in storage.list_objects(source + "/", client):
            storage.fetch_object(obj, dest / obj[len(source) + 1:], client)
        return
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dest))


def verify_folder(folder: Path) -> int:
    """Every file listed in ``damo-files.json`` is present with its size and sha256; returns the count."""
    manifest_path = folder / FILES_MANIFEST
    if not manifest_path.is_file():
        raise RegistryError(f"{folder}: {FILES_MANIFEST} is missing; the version was not registered by damo")
    listed = json.loads(manifest_path.read_text())["files"]
    for rel, expected in listed.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != expected["size"]:
            raise RegistryError(f"{path}: missing or of the wrong size (expected {expected['size']} bytes)")
        if sha256_file(path) != expected["sha256"]:
            raise RegistryError(f"{path}: sha256 differs from the registered {expected['sha256']}")
    return len(listed)


def pull(config: DamoConfig, model_uri: str, out: Path) -> dict[str, Any]:
    """Download a registered version into ``out`` (replaced only once complete and verified)."""
    mv = resolve_version(registry_client(require_uri(config)), model_uri)
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _fetch(mv.source, partial)
        count = verify_folder(partial)
    except storage.StorageError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise RegistryError(f"pulling {model_uri} (version {mv.version}, {mv.source}) failed: {err}") from err
    except RegistryError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    log.info("pulled %s (version %s) into %s: %d files verified", model_uri, mv.version, out, count)
    return {"model_uri": model_uri, "name": mv.name, "version": str(mv.version), "source": mv.source,
            "out": str(out), "files": count, "aliases": list(mv.aliases or [])}
