"""Summary statistics and a histogram (PNG) of the pairs' δ."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def summary(delta: np.ndarray) -> dict[str, float]:
    """delta (N,) → mean, std, min, quantiles, max, share of negative δ (pairs CLIP prefers rejected)."""
    q = np.quantile(delta, [0.05, 0.5, 0.95])
    return {
        "delta_mean_all": float(delta.mean()),
        "delta_std": float(delta.std()),
        "delta_min": float(delta.min()),
        "delta_p05": float(q[0]),
        "delta_median": float(q[1]),
        "delta_p95": float(q[2]),
        "delta_max": float(delta.max()),
        "delta_negative_fraction": float((delta < 0).mean()),
    }


def histogram(delta: np.ndarray, delta_mean: float, path: Path, bins: int, title: str) -> Path:
    """A PNG histogram of ``delta`` with δ̄ marked. Uses the Agg canvas directly (no global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(delta, bins=bins, color="#4477aa")
    axes.axvline(delta_mean, color="#cc3311", linestyle="--", label=f"δ̄ (train) = {delta_mean:.4f}")
    axes.set_xlabel("δ = c_w − c_l")
    axes.set_ylabel("pairs")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    return path
