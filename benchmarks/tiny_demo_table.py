"""Mean ± sd over seeds of the runs ``tiny_demo_seeds.sh`` wrote into OUT, as a markdown table.

Usage: ``python benchmarks/tiny_demo_table.py OUT [val]`` (OUT holds ``sft-s<seed>`` and ``<name>-s<seed>``).
The extra-object ratio is per seed, against the SFT policy evaluated with the same seed (same sampling).
With ``val``: the same table on the held-out validation pairs (``VALIDATION=1 tiny_demo_seeds.sh``).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

METRICS = (("tiny_world", "extra_object_rate"), ("tiny_world", "well_formed"), ("tiny_world_greedy", "exact"))


def runs(out: Path, folder: str = "eval") -> dict[str, dict[int, list[float]]]:
    found: dict[str, dict[int, list[float]]] = {}
    for metrics in sorted(out.glob(f"*-s*/{folder}/metrics.json")):
        match = re.fullmatch(r"(.+)-s(\d+)", metrics.parents[1].name)
        if match:
            data = json.loads(metrics.read_text())
            found.setdefault(match[1], {})[int(match[2])] = [float(data[g][k]) for g, k in METRICS]
    return found


def mean_sd(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


def main() -> None:
    found = runs(Path(sys.argv[1]), "val" if sys.argv[2:] == ["val"] else "eval")
    sft = found.get("sft", {})
    print("| run | seeds | extra objects (s) | ÷ SFT, per seed | well-formed (s), min | exact (g) |")
    print("|---|---|---|---|---|---|")
    for name, per in sorted(found.items()):
        seeds = sorted(per)
        ratios = [per[s][0] / sft[s][0] for s in seeds if s in sft]
        cols = [[per[s][i] for s in seeds] for i in range(len(METRICS))]
        print(f"| {name} | {','.join(map(str, seeds))} | {mean_sd(cols[0])} | "
              f"{' / '.join(f'{r:.2f}' for r in ratios)} | {mean_sd(cols[1])}, {min(cols[1]):.3f} | "
              f"{mean_sd(cols[2])} |")


if __name__ == "__main__":
    main()
