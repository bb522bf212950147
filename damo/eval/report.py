"""The Markdown report: every metric of every benchmark, models side by side, and bar plots (PNG).

``results`` maps a column name ("baseline", "model") to that model's metrics (group → metrics);
the first column is the reference of the Δ column. Plots show the headline rates of each group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from damo.flat import flatten as flatten_tree

# Rates a reader compares first (fractions; lower is better for the hallucination ones).
HEADLINES: dict[str, list[str]] = {
    "tiny_world": ["extra_object_rate", "chair_response", "chair_mention", "exact", "well_formed"],
    "object_halbench": ["chair_response", "chair_mention", "object_recall"],
    "amber": ["generative.chair", "generative.hal", "generative.cover", "discriminative.f1", "amber_score"],
    "pope": ["accuracy", "f1", "yes_ratio"],
    "mmhal_bench": ["hallucination_rate"],
}


def flatten(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Nested metrics → ``{"a.b": number}`` (:func:`damo.flat.flatten`); non-numbers (names, lists,
    None) and the ``decoding`` settings (not results) left out; NaN kept, it is a result too."""
    return {name: float(value) for name, value in flatten_tree(metrics).items()
            if "decoding" not in name.split(".")
            and isinstance(value, int | float) and not isinstance(value, bool)}


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if value == int(value) else f"{value:.4f}"


def _table(group: str, results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    columns = list(results)
    flats = {c: flatten(results[c].get(group, {})) for c in columns}
    present = set().union(*(f.keys() for f in flats.values()))
    keys = [k for k in _headlines(group) if k in present] + sorted(present - set(_headlines(group)))
    delta = [f"Δ ({columns[-1]} − {columns[0]})"] if len(columns) > 1 else []
    header = ["metric", *columns, *delta]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        values = [flats[c].get(key) for c in columns]
        row = [key, *(_fmt(v) for v in values)]
        if len(columns) > 1:
            first, last = values[0], values[-1]
            row.append(_fmt(last - first) if first is not None and last is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _headlines(group: str) -> list[str]:
    """The headline rates of a metric group (``tiny_world_greedy`` → tiny_world's), in reading order."""
    benchmark = next((b for b in HEADLINES if group == b or group.startswith(b + "_")), None)
    return HEADLINES[benchmark] if benchmark is not None else []


def _plot(group: str, results: Mapping[str, Mapping[str, Any]], path: Path) -> bool:
    """Grouped bars of the group's headline rates in percent; False when there is nothing to plot."""
    flats = {c: flatten(r.get(group, {})) for c, r in results.items()}
    keys = [k for k in _headlines(group) if any(k in f for f in flats.values())]
    if not keys:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    width = 0.8 / len(flats)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(keys), 3.2))
    for i, (column, flat) in enumerate(flats.items()):
        xs = [k + i * width for k in range(len(keys))]
        ax.bar(xs, [100 * flat.get(k, float("nan")) for k in keys], width, label=column)
    ax.set_xticks([k + width * (len(flats) - 1) / 2 for k in range(len(keys))], keys, fontsize=8)
    ax.set_ylabel("%")
    ax.set_title(group)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _decoding_text(decoding: Mapping[str, Any]) -> str:
    """``sampled: do_sample=True, temperature=1.0, ...`` (what generated the answers)."""
    settings = ", ".join(f"{k}={v}" for k, v in decoding.items() if k != "name" and v is not None)
    return f"`{decoding.get('name')}`: {settings}"


def write_report(out: Path, results: Mapping[str, Mapping[str, Any]], sources: Mapping[str, str]) -> Path:
    """``out/report.md`` (+ ``out/plots/<group>.png``); ``sources``: column → model or answers file."""
    groups = list(dict.fromkeys(g for r in results.values() for g in r))
    lines = ["# Evaluation report", ""]
    lines += [f"- **{column}**: `{source}`" for column, source in sources.items()]
    lines += ["", "Each benchmark's first section is its primary decoding (the tiny world: sampled at "
              "temperature 1, which shows the hallucination prior greedy decoding hides); each table "
              "starts with its headline rates."]
    for group in groups:
        lines += ["", f"## {group}", ""]
        present = [r[group] for r in results.values() if group in r]
        lines += sorted({f"Decoding {_decoding_text(m['decoding'])}  " for m in present if "decoding" in m})
        lines += sorted({f"Scorer: {m['scorer']}  " for m in present if "scorer" in m})
        lines += [f"_skipped for {c}: {r[group]['skipped']}_  " for c, r in results.items()
                  if "skipped" in r.get(group, {})]
        if _plot(group, results, out / "plots" / f"{group}.png"):
            lines += ["", f"![{group}](plots/{group}.png)"]
        lines += ["", *_table(group, results)]
    lines += ["", "Rates are fractions (plots in %). Object HalBench/tiny world: `chair_response` = "
              "hallucinated responses / responses with objects, `chair_mention` = hallucinated mentions / "
              "mentions. `official.*` (AMBER): the official script's printout, in percent rounded to 0.1. "
              "`—`: not computable (empty denominator) or not available."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
