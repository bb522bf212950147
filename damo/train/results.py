"""What a training run leaves behind: ``result.json``, ``metrics.json``, and the HF model folder.

The model folder (``out/model/``) loads with ``AutoModelForImageTextToText`` + ``AutoProcessor``:
safetensors weights (LoRA merged in), the processor, the resolved config and a model card that names
the data, the loss arm and the hyper-parameters.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damo.config import DamoConfig, LossConfig, save_resolved
from damo.skeleton import StepResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TrainResult(StepResult):
    """Rank 0's result (other ranks: ``stats`` = their rank only); ``stats`` also holds arm, steps,
    resumed_from, world_size, running_gap, seconds and the final step's metrics."""

    model: str = ""
    checkpoints: str = ""
    metrics: str = ""


def write_metrics(out: Path, history: list[dict[str, float]], extra: dict[str, Any]) -> Path:
    path = out / "metrics.json"
    final = history[-1] if history else {}
    path.write_text(json.dumps({"final": final, **extra, "history": history}, indent=2))
    return path


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def save_model_folder(state_dict: dict[str, Any], base_dir: Path, config: DamoConfig, out: Path,
                      card: str) -> Path:
    """Rebuild the policy on CPU from ``base_dir``, load the trained weights, merge LoRA, save it.

    ``state_dict`` is the trained ``PairLogps`` module's state (keys prefixed ``model.``), complete
    (ZeRO-3 weights consolidated by the caller).
    """
    from damo.models import load_policy, load_processor

    model = load_policy(base_dir, config.train.precision, freeze_vision_tower=False, lora=config.train.lora)
    missing, unexpected = model.load_state_dict(_strip_prefix(state_dict, "model."), strict=False)
    # Tied weights (lm_head ↔ embeddings) may appear under one name only; anything else is a bug.
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"trained weights do not fit {base_dir}: "
                           f"missing {sorted(set(missing) - tied)[:8]}, "
                           f"unexpected {unexpected[:8]}")
    if config.train.lora.enabled:
        model = model.merge_and_unload()
    folder = out / "model"
    model.save_pretrained(folder)
    load_processor(base_dir).save_pretrained(folder)
    save_resolved(config, folder)
    (folder / "README.md").write_text(card)
    return folder


def departures(loss: LossConfig) -> str:
    """The options of ``loss`` that depart from DAMA's objective, in words ("" for none)."""
    parts = [*(["the NLL of the chosen answers"] if loss.chosen_nll_weight > 0 else []),
             *(["counting rejected answers only through their fork"]
               if loss.rejected_tokens != "all" else [])]
    return " and ".join(parts) + (" are" if len(parts) > 1 else " is" if parts else "")


def model_card(config: DamoConfig, *, base_model: str, data: str, data_checksum: str, num_pairs: int,
               delta_mean: tuple[float, str] | None, steps: int, final: dict[str, float],
               selection: dict[str, Any] | None = None) -> str:
    """A Markdown model card: what was trained, on what, with which loss arm and hyper-parameters;
    with ``selection`` (:func:`damo.train.select.select_model`'s record), how the step was chosen."""
    t = config.train
    loss = t.loss.model_dump(mode="json")
    hyper = {k: v for k, v in t.model_dump(mode="json").items() if k not in ("loss", "lora")}
    lines = [
        "---", "library_name: transformers", "pipeline_tag: image-text-to-text",
        "tags: [damo, dama, dpo]", "---",
        "# Aligned with DAMA (damo)", "",
        f"Preference-optimised from `{base_model}` with the **{t.loss.arm}** loss arm of DAMA "
        "(Data- and Model-aware Alignment, Lu et al., ICML 2025).", "",
        *([f"Objective: **{t.loss.objective}** ({departures(t.loss)} not part of DAMA).", ""]
          if departures(t.loss) else []),
        "## Data", f"- dataset: `{data}` (checksum `{data_checksum}`)", f"- training pairs: {num_pairs}",
    ]
    if delta_mean is not None:
        lines.append(f"- δ̄ (mean CLIP hardness): {delta_mean[0]:.6g} — from {delta_mean[1]}")
    lines += ["", "## Loss", *(f"- {k}: {v}" for k, v in loss.items()), "",
              "## Training", f"- optimizer steps: {steps}", *(f"- {k}: {v}" for k, v in hyper.items())]
    if selection is not None:
        floor = ", ".join(f"{k} ≥ {v:g}" for k, v in selection["floor"].items()) or "none"
        lines += ["", "## Selected checkpoint",
                  f"- the weights after optimizer step {selection['step']}, chosen among the candidates at "
                  f"steps {[c['step'] for c in selection['candidates']]}: the {selection['mode']} of "
                  f"`{selection['metric']}` on held-out `{selection['data']}`, floor: {floor}"]
        lines += [f"- `{k}` at least the base model's {selection['base'][k]:g} less {drop:g} on the same data"
                  for k, drop in selection.get("base_floor", {}).items()]
    if t.lora.enabled:
        lines += ["", "## LoRA (merged into these weights)",
                  *(f"- {k}: {v}" for k, v in t.lora.model_dump(mode="json").items())]
    if final:
        lines += ["", "## Last logged metrics", *(f"- {k}: {v:.6g}" for k, v in final.items())]
    return "\n".join(lines) + "\n"
