"""Peak RSS and rows/s of ``damo ingest`` on a 20k-pair synthetic RLAIF-V-like set.

The peer is the naive loader: read the source whole (every Parquet shard with
``pyarrow.parquet.read_table``, or the DAMA JSON list with ``json.load``) into Python rows, run the
same per-row checks, write the kept rows in one go. Each runs in its own child process, so each peak
RSS is its own. Memory of ours is bounded by ``ingest.read_batch_rows`` and ``ingest.shard_rows``,
not by the set's size: the 83k-pair RLAIF-V set needs the same peak.

    .venv/bin/python benchmarks/ingest_rss.py [--pairs 20000] [--format rlaif_v|dama_json]

Ends with ``ratio peak_rss=<naive/ours> rows_per_s=<ours/naive>``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child_ours(source: str, out: str) -> dict:
    from damo.config import IngestConfig
    from damo.ingest import ingest

    start = time.perf_counter()
    report = ingest(source, Path(out), IngestConfig())
    return {"rows": report["input_rows"], "kept": report["kept"], "seconds": time.perf_counter() - start}


def child_naive(source: str, out: str) -> dict:
    """Read every shard whole, check every row with the same checks, write the kept rows at once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from damo.ingest.readers import ImageFolder, record_from_row
    from damo.ingest.source import open_source
    from damo.ingest.validate import Checked, check_record

    start = time.perf_counter()
    src = open_source(source)
    if source.endswith(".json"):  # everything in memory at once
        rows = json.loads(Path(source).read_text())
        images = ImageFolder(src, str(Path(source).parent))
    else:
        rows = [r for f in src.files() for r in pq.read_table(f).to_pylist()]
        images = ImageFolder(src, None)
    kept = []
    for i, row in enumerate(rows):
        result = check_record(record_from_row(f"#{i}", row, images), 89_478_485, 16)
        if isinstance(result, Checked):
            kept.append(
                {
                    "id": result.id,
                    "image": result.image,
                    "question": result.question,
                    "chosen": result.chosen,
                    "rejected": result.rejected,
                }
            )
    Path(out).mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(kept), Path(out) / "all.parquet", compression="zstd")
    return {"rows": len(rows), "kept": len(kept), "seconds": time.perf_counter() - start}


def run_child(kind: str, source: Path, out: Path) -> dict:
    code = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(source), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(code.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--format", choices=["rlaif_v", "dama_json"], default="rlaif_v")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, source, out = args.child
        result = (child_ours if kind == "ours" else child_naive)(source, out)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    from _synthetic import write_dama_json, write_rlaif_v

    with tempfile.TemporaryDirectory(prefix="damo-bench-ingest-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write = write_rlaif_v if args.format == "rlaif_v" else write_dama_json
        source = write(root / "src", args.pairs, distinct_images=500)
        size = sum(f.stat().st_size for f in (root / "src").rglob("*") if f.is_file()) / 2**20
        made = time.perf_counter() - start
        print(f"synthetic set: {args.pairs} pairs, {args.format}, {size:.0f} MiB, made in {made:.0f}s")
        ours = run_child("ours", source, root / "ours")
        naive = run_child("naive", source, root / "naive")
    for name, r in (("ours", ours), ("naive", naive)):
        print(
            f"{name:5s}: {r['rows'] / r['seconds']:.0f} rows/s, peak RSS {r['peak_rss_mb']:.0f} MiB, "
            f"kept {r['kept']}/{r['rows']}"
        )
    print(
        f"ratio peak_rss={naive['peak_rss_mb'] / ours['peak_rss_mb']:.2f} "
        f"rows_per_s={(ours['rows'] / ours['seconds']) / (naive['rows'] / naive['seconds']):.2f}"
    )


if __name__ == "__main__":
    main()
