"""The rule-based splitter: pieces fit the CLIP context, nothing is lost, short text is untouched."""

from __future__ import annotations

import open_clip
import pytest

from damo.hardness.splitter import SPLITTERS, RuleSplitter, make_splitter, token_counter


def _normal(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("context", [77, 16, 8])
def test_every_piece_fits_and_the_pieces_give_back_the_text(context: int):
    tokenizer = open_clip.SimpleTokenizer(context_length=context)
    split = make_splitter("rule", tokenizer)
    count = token_counter(tokenizer)
    text = (
        "The image shows a red square, a blue circle, and a green triangle; the background is grey. "
        "There is a cat!  Is there a dog? " + "a" * 300 + " and then, finally, the end.\nNew line here."
    )
    pieces = split(text)
    assert all(count(p) <= context for p in pieces)
    assert _normal("".join(pieces)) == _normal(text)


def test_sentences_are_split_and_short_ones_kept_whole():
    split = make_splitter("rule", open_clip.SimpleTokenizer())
    assert split("There is a red square. There is no dog!") == ["There is a red square.", "There is no dog!"]
    assert split("  One short sentence  ") == ["One short sentence"]
    assert split("Pi is 3.14 exactly.") == ["Pi is 3.14 exactly."]


def test_long_sentence_splits_at_clauses_before_words():
    words = RuleSplitter(lambda t: len(t.split()) + 2, context_length=8)
    assert words("one two three, four five six, seven eight") == [
        "one two three, four five six,",
        "seven eight",
    ]


def test_splitters_are_a_table_and_unknown_names_are_refused():
    assert "rule" in SPLITTERS
    with pytest.raises(ValueError, match="unknown splitter 'llm'"):
        make_splitter("llm", open_clip.SimpleTokenizer())
