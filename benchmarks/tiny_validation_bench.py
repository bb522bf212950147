"""A tiny-world benchmark folder made of the demo's HELD-OUT validation pairs, for choosing settings.

The world's benchmark images are the test: a step count picked on them is tuned on the test. This
writes the validation pairs that ingest held out (``split == "validation"``) in the benchmark's layout
(``images/``, ``tiny_world.jsonl``, the world's ``vocabulary.json``), so the project's own ``evaluate``
measures a trained model on them: ``--set evaluate.data.tiny_world=OUT``. Truth is the image's exact
description, read from the world's own rows by pair id (``pairs.true_description``): a chosen answer
is not always it (chosen noise invents an object in both answers; ingest's hash split can put a
label-swapped training pair among the held-out ones).

Usage: ``python benchmarks/tiny_validation_bench.py INGESTED_DATASET WORLD OUT``
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq

from damo.data.dataset import PreferenceDataset
from damo.tinyworld.pairs import true_description
from damo.tinyworld.vocab import mentioned


def _world_id(row: dict[str, str]) -> str:
    """The world's pair id, which ingest keeps in the row's ``origin`` (its own ``id`` is a hash)."""
    return str(json.loads(row["origin"])["id"])


def write(dataset: Path, world: Path, out: Path) -> int:
    (out / "images").mkdir(parents=True, exist_ok=True)
    source = PreferenceDataset(world / "data")
    columns = [c for c in ("id", "chosen", "rejected", "swapped", "invented") if c in source.schema.names]
    truths = {row["id"]: true_description(row) for row in source.read(columns=columns).to_pylist()}
    lines = []
    for shard in sorted(dataset.glob("shard-*.parquet")):
        for row in pq.read_table(shard, columns=["id", "split", "image", "question", "origin"]).to_pylist():
            if row["split"] != "validation":
                continue
            name = f"images/{row['id']}.png"
            (out / name).write_bytes(row["image"])
            truth = truths[_world_id(row)]
            lines.append(json.dumps({"id": row["id"], "image": name, "question": row["question"],
                                     "truth": sorted(mentioned(truth)), "reference": truth}))
    (out / "tiny_world.jsonl").write_text("".join(line + "\n" for line in lines))
    shutil.copy(world / "benchmark" / "vocabulary.json", out / "vocabulary.json")
    return len(lines)


if __name__ == "__main__":
    print(write(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])), "validation images")
