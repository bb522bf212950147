"""Model URIs → local HF folders, and loading policies/processors from them.

A model argument is a local folder, an ``s3://`` prefix (fetched with :mod:`damo.storage`), an
MLflow registry URI, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, fetched from the configured
tracking URI through :func:`damo.registry.fetch_verified` — the very check ``damo pull`` makes, every
file against the manifest whose sha256 was recorded at registration — or a Hugging Face Hub id
``org/name[@revision]`` (through the hub client's cache, :mod:`damo.hub`; an existing local folder of
the same relative name wins). Whatever the layout of a registered model's artifacts, the HF folder is
the one directory in it that holds ``config.json``.

Any transformers image-text-to-text model that loads with ``AutoModelForImageTextToText`` and
``AutoProcessor`` is accepted; LLaVA-1.5 (llava-hf format) is the first target.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from damo import device
from damo.config import DamoConfig, HubConfig, LoraConfig
from damo.errors import DamoError

log = logging.getLogger(__name__)

MODELS_PREFIX = "models:/"
# Attribute names under which transformers' VLMs keep their vision encoder.
VISION_TOWER_NAMES = ("vision_tower", "visual", "vision_model")


class ModelError(DamoError, RuntimeError):
    """A model URI cannot be resolved or a folder is not a loadable image-text-to-text model."""


def find_hf_folder(root: Path) -> Path:
    """The one folder at or under ``root`` that holds ``config.json``."""
    if (root / "config.json").is_file():
        return root
    found = sorted({p.parent for p in root.rglob("config.json")})
    if len(found) != 1:
        raise ModelError(f"{root}: expected one folder with config.json, found {[str(f) for f in found]}")
    return found[0]


def resolve_model(uri: str | Path, config: DamoConfig | None = None,
                  cache_dir: str | Path | None = None) -> Path:
    """A local HF folder for ``uri`` (a folder, ``s3://`` prefix, ``models:/NAME@ALIAS|/VERSION`` or a
    Hub id ``org/name[@revision]``).

    s3:// and models:/ models are downloaded into ``cache_dir`` (a new temporary folder when None), a
    registered one from ``config``'s tracking URI, verified as ``damo pull`` verifies it; Hub ids into
    the hub cache of ``config.hub``. ``config`` None: the defaults (and the environment's URIs).
    """
    config = config if config is not None else DamoConfig()
    text = str(uri)
    if text.startswith(MODELS_PREFIX) or text.startswith("s3://"):
        dest = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="damo-model-"))
        dest.mkdir(parents=True, exist_ok=True)
        if text.startswith(MODELS_PREFIX):
            from damo.registry import fetch_verified, require_uri
            from damo.tracking import client as tracking_client

            log.info("downloading %s from the MLflow registry into %s (verified against it)", text, dest)
            local = Path(tempfile.mkdtemp(prefix="registered-", dir=dest))  # empty: nothing unlisted
            fetch_verified(tracking_client(require_uri(config)), text, local)
        else:
            from damo.storage import download

            log.info("downloading %s into %s", text, dest)
            local = download(text, dest)
        return find_hf_folder(local)
    path = Path(text)
    if not path.is_dir():
        return resolve_hub_model(text, config.hub)
    return find_hf_folder(path)


def resolve_hub_model(text: str, hub: HubConfig) -> Path:
    """The hub-cache snapshot folder of the Hub id ``text`` (``org/name[@revision]``)."""
    from damo import hub as hub_ids

    ref = hub_ids.parse_hub_id(text)
    if ref is None:
        raise ModelError(f"model {text!r} is not a folder, an s3:// URI, a models:/ URI or a Hub id "
                         "org/name[@revision]")
    try:
        snapshot = hub_ids.download(ref, hub)
    except hub_ids.HubError as err:  # a mistyped relative path also lands here: say both
        raise ModelError(f"model {text!r} is no local folder, and as a Hub id: {err}") from err
    return find_hf_folder(snapshot.path)


def model_provenance(uri: str | Path, folder: Path) -> dict[str, str]:
    """What a step records about the model it read: the URI as given and, for a Hub snapshot, the repo
    and the exact commit it resolved to."""
    from damo.hub import snapshot_provenance

    return {"model": str(uri), **snapshot_provenance(folder)}


def load_processor(path: Path) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path)


def load_model(path: Path, precision: device.Precision) -> Any:
    """``AutoModelForImageTextToText`` from ``path`` in the dtype ``damo.device`` picks for ``precision``."""
    from transformers import AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(path, dtype=device.choose_dtype(precision))
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: not loadable with AutoModelForImageTextToText: {err}") from err


def vision_tower(model: Any) -> Any:
    """The vision encoder submodule of a transformers VLM (searched one level down, then two)."""
    for owner in (model, getattr(model, "model", None)):
        for name in VISION_TOWER_NAMES:
            module = getattr(owner, name, None) if owner is not None else None
            if module is not None:
                return module
    raise ModelError(f"{type(model).__name__}: no vision tower among attributes {VISION_TOWER_NAMES}")


def load_policy(path: Path, precision: device.Precision, *, freeze_vision_tower: bool = True,
                lora: LoraConfig | None = None, gradient_checkpointing: bool = False) -> Any:
    """The trainable policy: vision tower frozen (by default), optional LoRA on the language model."""
    model = load_model(path, precision)
    if freeze_vision_tower:
        vision_tower(model).requires_grad_(False)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None and lora.enabled:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        peft_config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                     target_modules=lora.target_modules)
        model = get_peft_model(model, peft_config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("policy %s: %d of %d parameters trainable", path, trainable, total)
    return model
