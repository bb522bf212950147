"""Sub-sentence splitters, chosen by name from :data:`SPLITTERS` (``score.splitter``).

A splitter turns one response into short pieces that each fit the CLIP text tower's context. The
rule-based default splits at sentence ends, and splits a sentence that is still too long at clauses
(``;`` ``:``), then commas, then words, then characters, packing neighbouring parts back together
while they fit — nothing is ever truncated silently. An LLM splitter can be added to the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Splitter = Callable[[str], list[str]]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Each level: how to cut a too-long piece, and the text that joins its parts back.
_LEVELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<=[;:])\s+"), " "),
    (re.compile(r"(?<=,)\s+"), " "),
    (re.compile(r"\s+"), " "),
)


class RuleSplitter:
    """Sentence/clause/comma/word splitting with a token budget.

    ``count_tokens(text)`` must return the tokens the CLIP tokenizer needs for ``text`` including its
    start/end tokens; ``context_length`` is the tower's limit (77 for OpenAI CLIP).
    """

    def __init__(self, count_tokens: Callable[[str], int], context_length: int):
        self.count_tokens = count_tokens
        self.context_length = context_length

    def fits(self, text: str) -> bool:
        return self.count_tokens(text) <= self.context_length

    def __call__(self, text: str) -> list[str]:
        pieces: list[str] = []
        for sentence in _SENTENCE_END.split(text.strip()):
            if sentence.strip():
                pieces.extend(self._fit(sentence.strip(), 0))
        return pieces

    def _fit(self, text: str, level: int) -> list[str]:
        if self.fits(text):
            return [text]
        if level == len(_LEVELS):
            return self._by_characters(text)
        pattern, joiner = _LEVELS[level]
        parts = [p for p in pattern.split(text) if p]
        if len(parts) == 1:
            return self._fit(text, level + 1)
        out: list[str] = []
        current = ""
        for part in parts:
            candidate = f"{current}{joiner}{part}" if current else part
            if self.fits(candidate):
                current = candidate
                continue
            if current:
                out.append(current)
            if self.fits(part):
                current = part
            else:
                out.extend(self._fit(part, level + 1))
                current = ""
        if current:
            out.append(current)
        return out

    def _by_characters(self, text: str) -> list[str]:
        """Last resort for one 'word' longer than the context (a URL, a number string...): the
        longest prefix that fits, found by bisection, then the rest."""
        out: list[str] = []
        start = 0
        while start < len(text):
            lo, hi = start + 1, len(text)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.fits(text[start:mid]):
                    lo = mid
                else:
                    hi = mid - 1
            out.append(text[start:lo])
            start = lo
        return out


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens an open_clip tokenizer uses for a text, start and end tokens included."""
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id"):  # open_clip SimpleTokenizer
        return lambda text: len(tokenizer.encode(text)) + 2
    inner = getattr(tokenizer, "tokenizer", None)  # open_clip HFTokenizer wraps a transformers tokenizer
    if inner is not None:
        return lambda text: len(inner(text)["input_ids"])
    raise TypeError(f"cannot count tokens with a {type(tokenizer).__name__}; add it to token_counter")


def rule_splitter(tokenizer: Any) -> Splitter:
    return RuleSplitter(token_counter(tokenizer), int(tokenizer.context_length))


# name → factory(tokenizer) -> Splitter
SPLITTERS: dict[str, Callable[[Any], Splitter]] = {"rule": rule_splitter}


def make_splitter(name: str, tokenizer: Any) -> Splitter:
    if name not in SPLITTERS:
        raise ValueError(f"unknown splitter {name!r}; known: {sorted(SPLITTERS)}")
    return SPLITTERS[name](tokenizer)
