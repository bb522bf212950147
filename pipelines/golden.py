"""Regenerate the golden compiled pipeline: ``python -m pipelines.golden``.

The golden file is the paper preset's pipeline (``configs/llava15_7b.yaml``) as a person would
upload it; a unit test recompiles it and compares, so any change to the compiled graph is reviewed.
Its image is a fixed example reference (a real compile names the image `damo image build` pushed).
"""

from pathlib import Path

from damo.config import DamoConfig, load_config
from pipelines.dama import compile_pipeline

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "dama_pipeline.yaml"
PRESET = "llava15_7b"
EXAMPLE_IMAGE = "registry.example.com/damo/damo@sha256:" + "0123456789abcdef" * 4


def golden_config() -> DamoConfig:
    return load_config(PRESET, [f"pipeline.image={EXAMPLE_IMAGE}"])


def main() -> None:
    out = compile_pipeline(golden_config(), GOLDEN)
    print(f"wrote {out}")  # noqa: T201 - a command-line entry point


if __name__ == "__main__":
    main()
