"""The promotion gate and the model card of a registered model version (pure functions, no I/O).

Gate semantics (``registry.gate``: metric → ``"min"`` | ``"max"``):

- empty gate → never promoted automatically (``champion`` is moved by hand);
- the candidate lacks a gate metric → not promoted (the reason names the metric);
- no champion yet → promoted;
- otherwise promoted iff the candidate is no worse than the champion on every gate metric that the
  champion has (ties pass: a retrain that reproduces the champion may replace it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def gate_decision(gate: Mapping[str, str], candidate: Mapping[str, float],
                  champion: Mapping[str, float] | None, champion_version: str | None,
                  floors: Mapping[str, float] | None = None) -> tuple[bool, str]:
    """(promote?, the reason in words) for a candidate against the current champion.

    ``floors`` (metric → least value) is the quality guard, checked before any comparison and also
    when there is no champion: a candidate that hallucinates less but writes worse (below the floor
    of a general-quality metric) is not promoted.
    """
    floors = floors or {}
    if not gate:
        return False, "no promotion gate configured (registry.gate is empty)"
    partial = sorted(k for k, v in candidate.items() if k.split(".")[-1] == "coverage" and v < 1)
    if partial:
        return False, f"candidate was scored on part of a benchmark only ({', '.join(partial)} < 1)"
    missing = sorted(m for m in {*gate, *floors} if m not in candidate)
    if missing:
        return False, f"candidate lacks gate metrics {missing}"
    below = [f"{m} {candidate[m]:.4g} < {least:.4g}"
             for m, least in sorted(floors.items()) if candidate[m] < least]
    if below:
        return False, "below the quality floor (registry.gate_floor) on " + "; ".join(below)
    if champion is None:
        return True, "no champion yet"
    worse = []
    for metric, direction in sorted(gate.items()):
        if metric not in champion:
            continue  # the champion was never measured on it: nothing to be worse than
        new, old = candidate[metric], champion[metric]
        if (direction == "max" and new < old) or (direction == "min" and new > old):
            worse.append(f"{metric} {new:.4g} vs {old:.4g} ({direction} is better)")
    if worse:
        return False, f"worse than champion v{champion_version} on " + "; ".join(worse)
    return True, f"no worse than champion v{champion_version} on {sorted(gate)}"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def model_card(name: str, version: str, source: str, tags: Mapping[str, str], metrics: Mapping[str, float],
               digests: Mapping[str, Any], aliases: Sequence[str], gate_reason: str) -> str:
    """A Markdown model card: provenance, metrics, the gate decision, and every file with its sha256."""
    lines = [
        f"# {name} version {version}",
        "",
        "A multimodal model aligned with DAMA by damo. Load it with `damo pull models:/"
        f"{name}/{version} --out DIR`, then `from_pretrained(DIR)`.",
        "",
        "| | |",
        "|---|---|",
        f"| aliases | {', '.join(aliases)} |",
        f"| loss arm | {tags.get('damo.arm', '?')} |",
        f"| objective | {tags.get('damo.objective', tags.get('damo.arm', '?'))} |",
        f"| base model | {tags.get('damo.base_model', '?')} |",
        f"| data manifest checksum | {tags.get('damo.data_manifest_checksum', '(not given)')} |",
        f"| files | {tags.get('damo.num_files', '?')} files, {_size(int(tags.get('damo.total_bytes', 0)))} |",
        f"| source | `{source}` |",
        "",
        "## Metrics",
        "",
    ]
    rows = [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())]
    lines += ["| metric | value |", "|---|---|", *rows] if rows else ["(no metrics given)"]
    lines += ["", "## Promotion gate", "", gate_reason, "", "## Files", "", "| file | size | sha256 |",
              "|---|---|---|"]
    lines += [f"| {rel} | {_size(d.size)} | `{d.sha256}` |" for rel, d in sorted(digests.items())]
    return "\n".join(lines) + "\n"
