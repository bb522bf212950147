"""A model's answers to every configured benchmark, generated and scored.

Shared by the evaluate step and by ``train.select`` (which scores each saved candidate on held-out
data), so it lives in the library, below the steps that adapt it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from damo import device
from damo.config import ConfigError, DamoConfig
from damo.eval import benchmarks
from damo.eval.items import BenchContext, coverage
from damo.models import model_provenance, resolve_model

log = logging.getLogger(__name__)


def generate_and_score(config: DamoConfig, model_uri: str,
                       out: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Generate ``model_uri``'s answers to every configured benchmark into ``out`` and score them;
    returns the metrics by group and what was evaluated (the model URI and its Hub commit)."""
    from damo.eval.generation import HFResponder, generate_answers  # torch/transformers only here

    ev = config.evaluate
    ctx = BenchContext(config, out, Path(ev.data_cache))
    # every benchmark's prompts first: a missing file fails now, not after hours of generation
    prompts = {name: benchmarks.get(name).load_items(ctx) for name in ev.benchmarks}
    model_dir = resolve_model(model_uri, config)
    responder = HFResponder(model_dir, ev.max_new_tokens, config.seed, ev.precision)
    results: dict[str, Any] = {}
    for name, items in prompts.items():
        bench = benchmarks.get(name)
        choices = benchmarks.decodings(ev, name)
        if bench.judged and any(d.samples > 1 for d in choices):
            raise ConfigError(f"{name}: judged benchmarks take one answer per prompt (decoding samples=1)")
        log.info("%s: %d prompts, decodings %s, model %s", name, len(items), [d.name for d in choices],
                 model_uri)
        for decoding in choices:
            path = out / f"answers.{name}.{decoding.name}.jsonl"
            answers = generate_answers(responder, items, decoding, path, benchmark=name, model=model_uri,
                                       batch_size=ev.batch_size)
            group = benchmarks.group_name(name, decoding.name, choices[0].name)
            counted = coverage(answers, items, name, ev.allow_missing_answers)
            results[group] = {**bench.score(ctx, items, answers, group), **counted,
                              "decoding": decoding.model_dump(), "answers": path.name}
    del responder
    device.release_cached_memory()  # the responder's weights go before the next model loads
    return results, model_provenance(model_uri, model_dir)
