"""One arm on one label-noise level against an arm on another, at matched drift, from two ``effect.json``.

Usage::

    python benchmarks/tiny_effect_levels.py A.json LEVEL ARM B.json LEVEL ARM [--axis kl|well_formed_drop]

``tiny_effect.py`` compares arms within a level. This compares across levels of the same world (e.g.
dpo with label noise against clean dpo: does the noise hurt it, or regularise it?) with the same
symmetric mean gap (``tiny_effect.mean_gap``), per seed; negative: the first is lower. Both files must
measure the same world (their checksums are compared) and start from the same SFT model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny_effect


def level_runs(effect: dict[str, Any], level: str, arm: str, renamed: str) -> dict[str, Any]:
    """The runs of ``arm`` on ``level``, renamed to ``renamed`` (so two levels can share one dict)."""
    if level not in effect["noise"]:
        raise SystemExit(f"no label-noise level {level!r}; the file has {sorted(effect['noise'])}")
    runs = {f"{renamed}:{name}": {**run, "arm": renamed}
            for name, run in effect["noise"][level]["runs"].items() if run["arm"] == arm}
    if not runs:
        raise SystemExit(f"no runs of arm {arm!r} on level {level!r}")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    for side in ("first", "second"):
        parser.add_argument(f"{side}_file", type=Path)
        parser.add_argument(f"{side}_level")
        parser.add_argument(f"{side}_arm")
    parser.add_argument("--axis", choices=sorted(tiny_effect.DRIFT), default="kl")
    args = parser.parse_args()
    first, second = (json.loads(p.read_text()) for p in (args.first_file, args.second_file))
    if first["world_checksum"] != second["world_checksum"]:
        raise SystemExit("the two files measure different worlds: "
                         f"{first['world_checksum'][:16]} and {second['world_checksum'][:16]}")
    runs = {**level_runs(first, args.first_level, args.first_arm, "first"),
            **level_runs(second, args.second_level, args.second_arm, "second")}
    before = first["noise"][args.first_level]["before"]
    print(f"mean gap ({args.first_arm} at {args.first_level}) − ({args.second_arm} at {args.second_level}) "
          f"over the {args.axis} range both reach, per seed (negative: the first is lower):")
    for row in tiny_effect.mean_gap(runs, before, "first", against="second", axis=args.axis):
        gap = "—" if row["gap"] is None else f"{row['gap']:+.4f}"
        print(f"seed {row['seed']}: {row['range'][0]:.3f}–{row['range'][1]:.3f} {gap}")


if __name__ == "__main__":
    main()
