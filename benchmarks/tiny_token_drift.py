"""Where preference training moves each token: log p_θ − log p_ref per response token, by region.

Why: trained past a few dozen steps on the tiny world, DPO-family losses break the caption grammar
(answers that run colours together or never end). Candidate causes: the loss lowers the *whole*
rejected answer, including the correct words after the fork (the first token where rejected and
chosen differ); or two kinds of pair teach opposite next words in contexts the policy cannot tell
apart, so both lose probability. This script measures, on held-out pairs, where it goes.

For every validation pair of a scored dataset (``damo reference`` output, which carries the pair kind
in ``origin``; a world's own ``data`` folder works too) it computes, under the reference (the SFT
policy) and under each trained model, teacher-forced on both answers, and reports mean shifts
(model − reference) per answer side, pair kind and region — ``prefix`` (before the fork), ``fork``,
``after``, and ``end`` (the end-of-sequence token):

- ``token``: the log-prob of the answer's own token;
- ``grammar mass``: the log of the probability that the next token keeps the answer inside the
  caption grammar (any token after which the text is still a prefix of a grammatical caption; the
  end-of-sequence token only where the caption is complete). Where it falls, sampling leaves the
  grammar there: this is the teacher-forced cause of a falling sampled well-formedness;
- ``fork mass`` (per pair): log(p(chosen's fork token) + p(rejected's)) in the context both share.
  Where it falls, the model lowers *both* continuations the pair offers.

Usage::

    python benchmarks/tiny_token_drift.py DATA WORLD NAME=MODEL [NAME=MODEL ...] [--out FILE.json]

WORLD is the tiny world folder: its ``policy`` is the reference, its ``benchmark/vocabulary.json`` the
grammar.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import regex
import torch

from damo.contract import PAIR_COLUMNS, VALIDATION_SPLIT
from damo.data.dataset import PreferenceDataset
from damo.eval.tiny_world import load_grammar
from damo.models import load_model, load_processor
from damo.train.batch import PairBatch, collate_pairs, fork

BATCH = 32
# Tokens enough to finish any grammatical prefix ("There" → " is a red circle." is 5 more).
COMPLETION_DEPTH = 8


def response_logps(model: torch.nn.Module, batch: PairBatch) -> list[torch.Tensor]:
    """Each of the 2B sequences' (chosen rows first) log-distributions at its response positions:
    (len, V), row i being the distribution the answer's token i was drawn from."""
    pixels = torch.cat([batch.pixel_values, batch.pixel_values])
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   pixel_values=pixels).logits.float()
    logps = torch.log_softmax(logits[:, :-1], dim=-1)
    return [row[mask] for row, mask in zip(logps, batch.response_mask[:, 1:])]


def response_ids(batch: PairBatch) -> list[list[int]]:
    return [row[m].tolist() for row, m in zip(batch.input_ids, batch.response_mask)]


def regions(length: int, at: int) -> list[str]:
    return ["prefix" if i < at else "fork" if i == at else "end" if i == length - 1 else "after"
            for i in range(length)]


class Grammar:
    """Which next tokens keep a response inside the caption grammar (cached per prefix)."""

    def __init__(self, pattern: str, tokenizer: Any, vocab_size: int) -> None:
        self.pattern = regex.compile(pattern)
        special, known = set(tokenizer.all_special_ids), len(tokenizer)
        # Special, empty and padding-only ids (the embedding is padded past the vocabulary) never count.
        self.strings = [tokenizer.decode([i]) if i < known and i not in special else ""
                        for i in range(vocab_size)]
        self.eos = int(tokenizer.eos_token_id)
        self.cache: dict[str, torch.Tensor] = {}
        self.completions: dict[tuple[str, int], bool] = {}

    def allowed(self, prefix: str) -> torch.Tensor:
        """(V,) bool: tokens after which ``prefix`` + token is still a grammatical prefix."""
        if prefix not in self.cache:
            mask = torch.tensor([bool(s) and self.completes(prefix + s) for s in self.strings])
            mask[self.eos] = self.pattern.fullmatch(prefix.strip()) is not None
            self.cache[prefix] = mask
        return self.cache[prefix]

    def completes(self, text: str, depth: int = COMPLETION_DEPTH) -> bool:
        """Some sequence of at most ``depth`` more tokens makes ``text`` a whole caption. A text that is
        only a prefix *as a string* can still be a dead end in tokens ("…a red " + a space: no token
        starts with "circle" without its space), so prefixes are followed token by token."""
        key = (text, depth)
        if key not in self.completions:
            stripped = text.lstrip()
            if self.pattern.fullmatch(stripped):
                self.completions[key] = True
            elif depth == 0 or self.pattern.fullmatch(stripped, partial=True) is None:
                self.completions[key] = False
            else:
                self.completions[key] = any(s and self.completes(text + s, depth - 1) for s in self.strings)
        return self.completions[key]

    def mass(self, ids: list[int], logps: torch.Tensor) -> list[float | None]:
        """log P(next token grammatical) at each position of the response ``ids`` ((len, V) ``logps``);
        None where the answer has already left the grammar (a rejected answer naming two objects)."""
        out: list[float | None] = []
        for i in range(len(ids)):
            allowed = self.allowed("".join(self.strings[t] for t in ids[:i]))
            out.append(float(torch.logsumexp(logps[i][allowed], dim=0)) if allowed.any() else None)
        return out


def pair_cells(kind: str, chosen: list[int], rejected: list[int], dists: tuple[torch.Tensor, ...],
               grammar: Grammar) -> dict[str, list[float]]:
    """Per-position measures of one pair under one model, keyed ``measure/side/region[/kind]``."""
    cells: dict[str, list[float]] = defaultdict(list)
    at = fork(chosen, rejected)
    for side, ids, dist in (("chosen", chosen, dists[0]), ("rejected", rejected, dists[1])):
        own = dist.gather(-1, torch.tensor(ids)[:, None]).squeeze(-1).tolist()
        for region, token, mass in zip(regions(len(ids), at), own, grammar.mass(ids, dist)):
            for key in (f"{side}/{region}", f"{side}/{region}/{kind}"):
                cells[f"token/{key}"].append(token)
                # NaN keeps the positions of the reference's and the model's lists aligned.
                cells[f"grammar mass/{key}"].append(float("nan") if mass is None else mass)
    if at < min(len(chosen), len(rejected)):
        both = torch.tensor([chosen[at], rejected[at]])
        cells[f"fork mass/{kind}"].append(float(torch.logsumexp(dists[0][at][both], dim=0)))
    return cells


def measure(data: Path, world: Path, models: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Mean shift (model − the world's SFT policy) of every measure; ``n:<key>`` counts positions."""
    dataset = PreferenceDataset(data)
    # Ingested data carries the world's columns in ``origin``; a world's own data folder has ``kind``.
    extra = [c for c in ("origin", "kind") if c in dataset.schema.names]
    rows = dataset.read([*PAIR_COLUMNS, *extra], split=VALIDATION_SPLIT).to_pylist()
    kinds = [str(r["kind"] if "kind" in r else json.loads(r.get("origin") or "{}").get("kind", "?"))
             for r in rows]
    reference = world / "policy"
    processor = load_processor(reference)
    pattern = load_grammar(world / "benchmark")
    if pattern is None:
        raise ValueError(f"{world}/benchmark/vocabulary.json gives no caption grammar")
    batches = [collate_pairs(processor, rows[i:i + BATCH]) for i in range(0, len(rows), BATCH)]
    ids = [pair for b in batches for pair in _pairs(response_ids(b))]
    grammar: Grammar | None = None

    def cells_of(folder: Path) -> list[dict[str, list[float]]]:
        nonlocal grammar
        model = load_model(folder, "fp32").eval()
        with torch.inference_mode():
            dists = [pair for b in batches for pair in _pairs(response_logps(model, b))]
        grammar = grammar or Grammar(pattern.pattern, processor.tokenizer, dists[0][0].shape[-1])
        return [pair_cells(k, c, r, d, grammar) for k, (c, r), d in zip(kinds, ids, dists)]

    before = cells_of(reference)
    results: dict[str, dict[str, float]] = {}
    for name, folder in models.items():
        shifts: dict[str, list[float]] = defaultdict(list)
        for old, new in zip(before, cells_of(folder)):
            for key, values in new.items():
                shifts[key].extend(n - o for n, o in zip(values, old[key]) if not math.isnan(n - o))
        results[name] = {k: round(statistics.fmean(v), 3) for k, v in sorted(shifts.items()) if v} | {
            f"n:{k}": len(v) for k, v in sorted(shifts.items()) if v}
    return results


def _pairs(per_row: list) -> list[tuple]:
    """(2B) rows, chosen first → [(c0, r0), (c1, r1), ...]."""
    half = len(per_row) // 2
    return list(zip(per_row[:half], per_row[half:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path,
                        help="a `damo reference` (or `damo score`) output with validation pairs")
    parser.add_argument("world", type=Path, help="the tiny world folder (its policy is the reference)")
    parser.add_argument("models", nargs="+", help="NAME=FOLDER of each trained model")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    models = {spec.split("=", 1)[0]: Path(spec.split("=", 1)[1]) for spec in args.models}
    results = measure(args.data, args.world, models)
    keys = [k for k in next(iter(results.values())) if not k.startswith("n:")]
    print("| shift (model − SFT) | n | " + " | ".join(results) + " |")
    print("|---|---|" + "---|" * len(results))
    for key in keys:
        count = next(iter(results.values()))[f"n:{key}"]
        print(f"| {key} | {count} | " + " | ".join(f"{r[key]:+.3f}" for r in results.values()) + " |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
