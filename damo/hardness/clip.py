"""Loading the CLIP that scores hardness: open_clip by name + pretrained tag, a checkpoint file, or a
folder in open_clip's hf-hub layout (``open_clip_config.json`` + ``open_clip_model.safetensors``, what
the tiny world writes to ``DIR/clip/``), or such a folder on the Hugging Face Hub,
``hf-hub:org/name[@revision]`` (open_clip's prefix; fetched through the hub cache of :mod:`damo.hub`,
its commit recorded). Files and folders may be local or ``s3://``. Pretrained tags that open_clip
hosts on the Hub (``openai`` for ViT-L-14-336...) are fetched by open_clip into ``hub.cache_dir``
(the client then honours HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN) and their commit recorded too.

The model is put on :func:`damo.device.choose_device` in :func:`damo.device.inference_dtype`
(``score.precision``: half precision on GPU and on CPUs with native bf16), in eval mode; scoring runs
it under ``torch.inference_mode``.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch

from damo import hub as hub_ids
from damo import storage
from damo.config import HubConfig, ScoreConfig
from damo.device import choose_device, inference_dtype
from damo.errors import DamoError

HF_CONFIG = "open_clip_config.json"


class ClipLoadError(DamoError, RuntimeError):
    """The configured CLIP could not be loaded; the message names what was asked for."""


@dataclass
class LoadedClip:
    model: Any  # open_clip.CLIP (or CustomTextCLIP)
    preprocess: Any  # PIL image → (3, H, W) float tensor
    tokenizer: Any  # list[str] → (N, context_length) long tensor
    device: torch.device
    dtype: torch.dtype
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def context_length(self) -> int:
        return int(self.tokenizer.context_length)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _is_folder(uri: str) -> bool:
    if storage.is_s3(uri):
        return any(k.endswith("/" + HF_CONFIG) for k in storage.list_objects(uri.rstrip("/") + "/"))
    return Path(uri).is_dir()


def _from_folder(folder: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    if not (folder / HF_CONFIG).is_file():
        raise ClipLoadError(f"CLIP folder {folder} lacks {HF_CONFIG} (open_clip hf-hub layout)")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    weights = sorted(folder.glob("open_clip_model.safetensors")) or sorted(folder.glob("*.safetensors"))
    return model, preprocess, tokenizer, {"weights_sha256": _sha256(weights[0]) if weights else None}


def _tag_commit(name: str, tag: str, cache_dir: str | None) -> dict[str, Any]:
    """The Hub repo and commit open_clip fetched a pretrained tag's weights from (empty if not the Hub)."""
    from huggingface_hub import try_to_load_from_cache

    hf_hub = open_clip.get_pretrained_cfg(name, tag).get("hf_hub", "")
    repo, filename = hf_hub.rstrip("/"), None
    if hf_hub and not hf_hub.endswith("/"):
        repo, filename = hf_hub.rsplit("/", 1)
    defaults = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for candidate in [filename] if filename else defaults:
        cached = try_to_load_from_cache(repo, candidate, cache_dir=cache_dir) if repo else None
        if isinstance(cached, str):
            return hub_ids.snapshot_provenance(Path(cached).parent)
    return {}


def _from_name(name: str, pretrained: str | None, hub: HubConfig) -> tuple[Any, Any, Any, dict[str, Any]]:
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained,
                                                                 cache_dir=hub.cache_dir)
    tokenizer = open_clip.get_tokenizer(name)
    is_file = bool(pretrained) and Path(str(pretrained)).is_file()
    extra: dict[str, Any] = {"weights_sha256": _sha256(Path(str(pretrained))) if is_file else None}
    if pretrained and not is_file:
        extra.update(_tag_commit(name, pretrained, hub.cache_dir))
    return model, preprocess, tokenizer, extra


def _from_hub(cfg: ScoreConfig, hub: HubConfig) -> tuple[Any, Any, Any, dict[str, Any]]:
    ref = hub_ids.parse_hub_id(cfg.clip_model.removeprefix(hub_ids.CLIP_PREFIX))
    if ref is None:
        raise ClipLoadError(f"score.clip_model {cfg.clip_model}: expected hf-hub:org/name[@revision]")
    if cfg.clip_pretrained is not None:
        raise ClipLoadError(f"score.clip_model {cfg.clip_model} is a Hub folder: set score.clip_pretrained "
                            "to null")
    snapshot = hub_ids.download(ref, hub)
    model, preprocess, tokenizer, extra = _from_folder(snapshot.path)
    return model, preprocess, tokenizer, {**extra, **snapshot.provenance()}


def _build(cfg: ScoreConfig, tmp: Path, hub: HubConfig) -> tuple[Any, Any, Any, dict[str, Any]]:
    if cfg.clip_model.startswith(hub_ids.CLIP_PREFIX):
        return _from_hub(cfg, hub)
    if _is_folder(cfg.clip_model):
        if cfg.clip_pretrained is not None:
            raise ClipLoadError(
                f"score.clip_model {cfg.clip_model} is a folder: set score.clip_pretrained to null"
            )
        folder = (
            storage.download(cfg.clip_model.rstrip("/") + "/", tmp)
            if storage.is_s3(cfg.clip_model)
            else Path(cfg.clip_model)
        )
        return _from_folder(Path(folder))
    if storage.is_s3(cfg.clip_model) or (":" not in cfg.clip_model and "/" in cfg.clip_model):
        # Looks like a path, and open_clip names never contain "/" (hf-hub:/local-dir: ones have ":").
        raise ClipLoadError(f"score.clip_model {cfg.clip_model}: no such CLIP folder (with {HF_CONFIG})")
    pretrained = cfg.clip_pretrained
    if pretrained is not None and storage.is_s3(pretrained):
        pretrained = str(storage.download(pretrained, tmp))
    return _from_name(cfg.clip_model, pretrained, hub)


def load_clip(cfg: ScoreConfig, hub: HubConfig | None = None) -> LoadedClip:
    """The CLIP of ``cfg`` on this process's device, eval mode, inference dtype; callers run it under
    ``torch.inference_mode`` (no graph, no saved activations). Hub ids use ``hub`` (default settings
    when None)."""
    device, dtype = choose_device(), inference_dtype(cfg.precision)
    with tempfile.TemporaryDirectory(prefix="damo-clip-") as tmp:
        try:
            model, preprocess, tokenizer, extra = _build(cfg, Path(tmp), hub or HubConfig())
        except (RuntimeError, OSError, ValueError, KeyError) as err:
            if isinstance(err, ClipLoadError):
                raise
            raise ClipLoadError(
                f"cannot load CLIP score.clip_model={cfg.clip_model!r} "
                f"score.clip_pretrained={cfg.clip_pretrained!r}: {err}"
            ) from err
    # The parameters keep requires_grad=True on purpose; inference_mode already records nothing.
    # nn.MultiheadAttention feeds its linear layers a transposed 3-D input, and torch's matmul folds
    # that into one mm only when the weight requires grad; otherwise it runs a bmm over a copied,
    # expanded weight. Measured on this CPU, bf16 ViT-B-32 text tower: 3.9 vs 7.1 ms per sentence.
    model = model.to(device=device, dtype=dtype).eval()
    provenance = {
        "clip_model": cfg.clip_model,
        "clip_pretrained": cfg.clip_pretrained,
        "context_length": int(tokenizer.context_length),
        "dtype": str(dtype).removeprefix("torch."),
        **extra,
    }
    return LoadedClip(model, preprocess, tokenizer, device, dtype, provenance)
