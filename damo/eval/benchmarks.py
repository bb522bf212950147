"""The benchmark table: name → how to load its prompts and how to score answers to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from damo.config import DecodingConfig, EvaluateConfig
from damo.eval import amber, llava_bench, mmhal, object_halbench, pope, tiny_world
from damo.eval.items import BenchContext, BenchmarkDataError, EvalItem


@dataclass(frozen=True)
class Benchmark:
    load_items: Callable[[BenchContext], list[EvalItem]]
    # (context, items, answer records, metric group name) → metrics
    score: Callable[[BenchContext, list[EvalItem], list[dict[str, Any]], str], dict[str, Any]]
    judged: bool = False


BENCHMARKS: dict[str, Benchmark] = {
    tiny_world.NAME: Benchmark(tiny_world.load_items, tiny_world.score),
    object_halbench.NAME: Benchmark(object_halbench.load_items, object_halbench.score),
    amber.NAME: Benchmark(amber.load_items, amber.score),
    pope.NAME: Benchmark(pope.load_items, pope.score),
    mmhal.NAME: Benchmark(mmhal.load_items, mmhal.score, judged=True),
    llava_bench.NAME: Benchmark(llava_bench.load_items, llava_bench.score, judged=True),
}


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise BenchmarkDataError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def decodings(config: EvaluateConfig, name: str) -> list[DecodingConfig]:
    """The benchmark's decodings (first = primary); greedy when the config names none."""
    return config.decoding.get(name) or [DecodingConfig()]


def group_name(benchmark: str, decoding: str | None, primary: str) -> str:
    """Metric group: the benchmark's name for its primary decoding, ``<benchmark>_<decoding>`` else."""
    return benchmark if decoding in (None, primary) else f"{benchmark}_{decoding}"
