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

Pulling (:func:`pull`, and every ``models:/`` model of a step, through :func:`fetch_verified`):
``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` → the version's files in a folder that
``from_pretrained`` loads. ``damo-files.json`` must hash to the sha256 recorded on the model version in
MLflow, every file must match it, and no unlisted file is accepted. The folder is written beside
``out`` and moved into place only when complete; ``out`` is replaced only if it is empty, an earlier
pull (:data:`PULL_MARKER`) or ``force`` is given, and never when it is or holds the working folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from damo import storage
from damo.config import DamoConfig
from damo.data.dataset import Manifest, sha256_file
from damo.errors import DamoError
from damo.flat import numbers
from damo.model_card import gate_decision, model_card
from damo.tracking import Tracker, tracking_uri
from damo.tracking import client as tracking_client

log = logging.getLogger(__name__)

FILES_MANIFEST = "damo-files.json"
MANIFEST_TAG = "damo.files_manifest_sha256"  # sha256 of the files manifest, recorded on the model version
PULL_MARKER = ".damo-pull.json"  # in a folder that `damo pull` wrote: it may replace that folder
CANDIDATE, CHAMPION = "candidate", "champion"
METRIC_TAG = "damo.metric."
URI_FORMS = "models:/NAME@ALIAS or models:/NAME/VERSION"
MODEL_NAME_MAX = 200
MODEL_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MODEL_NAME_MAX - 1}}}")


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise RegistryError(f"metrics file {path}: not JSON ({err})") from err
    if not isinstance(data, dict):
        raise RegistryError(f"metrics file {path}: expected a JSON object, got {type(data).__name__}")
    return numbers(data)


def check_model_name(name: str) -> str:
    """A registered model name usable everywhere damo puts it: MLflow's rules (not empty, no ``/`` or
    ``:``), no ``@`` (``models:/NAME@ALIAS`` would misread it), and a safe S3 path segment."""
    if not MODEL_NAME.fullmatch(name):
        raise RegistryError(f"model name {name!r} is not allowed: use 1-{MODEL_NAME_MAX} letters, digits, "
                            "'.', '_' or '-', starting with a letter or digit (no '/', ':', '@' or spaces)")
    return name


def data_checksum(data_dir: Path | None) -> str | None:
    """The preference dataset's manifest checksum (tagged on the version); None without a dataset."""
    if data_dir is None:
        return None
    try:
        return Manifest.load(Path(data_dir)).checksum
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RegistryError(f"--data {data_dir}: not a readable preference dataset ({err})") from err


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


def _version_tags(config: DamoConfig, data: str | None, metrics: Mapping[str, float],
                  manifest: Mapping[str, Any]) -> dict[str, str]:
    tags = {
        "damo.arm": config.train.loss.arm,
        "damo.objective": config.train.loss.objective,
        "damo.base_model": config.pipeline.base_model or f"{config.pipeline.tiny_world_dir}/policy",
        MANIFEST_TAG: _manifest_sha256(manifest),
        "damo.total_bytes": str(manifest["total_bytes"]),
        "damo.num_files": str(len(manifest["files"])),
    }
    if data is not None:
        tags["damo.data_manifest_checksum"] = data
    return tags | {f"{METRIC_TAG}{k}": repr(v) for k, v in metrics.items()}


def check_inputs(config: DamoConfig, model_dir: Path, metrics_path: Path | None,
                 data_dir: Path | None) -> tuple[str, dict[str, float], str | None]:
    """(name, metrics, dataset checksum), or RegistryError naming the bad input; nothing is sent."""
    name = check_model_name(config.registry.model_name)
    model_files(model_dir)
    return name, load_metrics(metrics_path), data_checksum(data_dir)


def register(config: DamoConfig, tracker: Tracker, model_dir: Path, metrics_path: Path | None = None,
             data_dir: Path | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Upload + verify ``model_dir``, then create the model version (its run: ``tracker``'s, the
    register step's MLflow run) and set its aliases. Every input is checked before any upload."""
    name, metrics, checksum = check_inputs(config, model_dir, metrics_path, data_dir)
    client = tracking_client(require_uri(config))
    run_id = tracker.run_id
    if run_id is None:
        raise RegistryError("the register step needs an MLflow run to tie the model version to")
    prefix = f"{store_uri(config)}/{name}/{run_id}"
    digests, manifest = _upload_all(model_dir, prefix, config, progress)
    tags = _version_tags(config, checksum, metrics, manifest)
    champion = _champion(client, name)
    _ensure_registered_model(client, name)
    mv = client.create_model_version(name, prefix, run_id=run_id, tags=tags)
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
            "aliases": aliases, "source": prefix, "run_id": run_id, "gate": reason,
            "files": len(digests), "total_bytes": manifest["total_bytes"], "model_card": card}


def _manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys): the same for the uploaded pretty file."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


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


def verify_folder(folder: Path, recorded_sha256: str | None) -> int:
    """``folder`` holds exactly what was registered; returns the number of files checked.

    The anchor is ``recorded_sha256``: the sha256 of the files manifest that ``register`` recorded on
    the MLflow model version (tag ``damo.files_manifest_sha256``). The ``damo-files.json`` fetched from
    the store must hash to it (so rewriting a file and the manifest together is caught), every file it
    lists must have its size and sha256, and a file it does not list is refused, named.
    """
    manifest_path = folder / FILES_MANIFEST
    if not manifest_path.is_file():
        raise RegistryError(f"{folder}: {FILES_MANIFEST} is missing; the version was not registered by damo")
    if not recorded_sha256:
        raise RegistryError(f"the model version has no {MANIFEST_TAG} tag: it was not registered by damo, "
                            "so its files cannot be verified")
    try:
        manifest = json.loads(manifest_path.read_text())
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise RegistryError(f"{manifest_path}: not a damo files manifest ({err})") from err
    if _manifest_sha256(manifest) != recorded_sha256:
        raise RegistryError(f"{manifest_path} differs from the manifest recorded in MLflow at registration "
                            f"({MANIFEST_TAG}={recorded_sha256}): the stored model was altered")
    # every entry that is not a directory, links and special files too: only listed files may be there
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink() or not p.is_dir()}
    unlisted = sorted(present - set(listed) - {FILES_MANIFEST})
    if unlisted:
        raise RegistryError(f"{folder / unlisted[0]}: not in the registered files manifest "
                            f"({len(unlisted)} unlisted file(s)); refusing a model with extra files")
    for rel, expected in listed.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != expected["size"]:
            raise RegistryError(f"{path}: missing or of the wrong size (expected {expected['size']} bytes)")
        if sha256_file(path) != expected["sha256"]:
            raise RegistryError(f"{path}: sha256 differs from the registered {expected['sha256']}")
    return len(listed)


def fetch_verified(client: Any, model_uri: str, dest: Path) -> tuple[Any, int]:
    """Resolve ``model_uri``, fetch its files into the empty folder ``dest`` and verify them against the
    manifest hash recorded on the model version (:func:`verify_folder`). The one path by which damo
    turns a ``models:/`` URI into local files: ``pull`` and every step that takes a model use it."""
    mv = resolve_version(client, model_uri)
    try:
        _fetch(mv.source, dest)
    except storage.StorageError as err:
        raise RegistryError(f"pulling {model_uri} (version {mv.version}, {mv.source}) failed: {err}") from err
    count = verify_folder(dest, (mv.tags or {}).get(MANIFEST_TAG))
    return mv, count


def check_out_folder(out: Path, force: bool) -> None:
    """``out`` may be replaced: never ``.`` or a folder holding the working folder; a non-empty folder
    only when it is an earlier pull (its marker) or with ``force``."""
    target, cwd = out.resolve(), Path.cwd().resolve()
    if cwd == target or cwd.is_relative_to(target):
        raise RegistryError(f"--out {out}: is the working folder or holds it; pull into a new folder")
    if target.exists() and not target.is_dir():
        raise RegistryError(f"--out {out}: exists and is not a folder; pull into a new folder")
    if target.is_dir() and any(target.iterdir()) and not (target / PULL_MARKER).is_file() and not force:
        raise RegistryError(f"--out {out}: is a non-empty folder that damo did not pull into (no "
                            f"{PULL_MARKER}); choose an empty or new folder, or pass --force to replace it")


def pull(config: DamoConfig, model_uri: str, out: Path, force: bool = False) -> dict[str, Any]:
    """Download a registered version into ``out`` (replaced only once complete and verified)."""
    check_out_folder(out, force)
    client = tracking_client(require_uri(config))
    parse_model_uri(model_uri)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))  # never a user's folder
    try:
        mv, count = fetch_verified(client, model_uri, partial)
    except RegistryError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (partial / PULL_MARKER).write_text(json.dumps({"model_uri": model_uri, "version": str(mv.version)}))
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    log.info("pulled %s (version %s) into %s: %d files verified", model_uri, mv.version, out, count)
    return {"model_uri": model_uri, "name": mv.name, "version": str(mv.version), "source": mv.source,
            "out": str(out), "files": count, "aliases": list(mv.aliases or [])}
