"""JSON lists and JSONL read row by row: same rows as json.loads, wherever the chunks fall."""

from __future__ import annotations

import io
import json

import pytest

from damo.ingest.jsonstream import is_json_list, iter_json_list, iter_jsonl
from damo.ingest.records import MALFORMED_ROW, IngestError, Problem

ROWS = [
    {"question": 'say "hi" [not a list], {not an object}', "chosen": "é ü 漢字 🙂", "idx": 0},
    {"nested": {"a": [1, 2, {"b": None}]}, "idx": 12345678901234567890, "x": -1.5e-7},
    [],
    "a bare string",
    3.25,
    True,
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_items_equal_json_loads_for_any_chunk_size(chunk: int, indent: int | None):
    data = json.dumps(ROWS, indent=indent, ensure_ascii=False).encode()
    assert list(iter_json_list(io.BytesIO(data), "rows.json", chunk=chunk)) == json.loads(data)


def test_empty_list_and_surrounding_whitespace():
    assert list(iter_json_list(io.BytesIO(b" \n[ \t]\n "), "e.json", chunk=1)) == []


def test_invalid_utf8_survives_as_surrogates_for_validation_to_quarantine():
    data = b'[{"chosen": "bad \xff byte"}]'
    (row,) = iter_json_list(io.BytesIO(data), "b.json", chunk=4)
    assert row["chosen"] == "bad \udcff byte"


def test_rows_are_read_as_the_consumer_asks_not_all_at_once():
    data = json.dumps([{"chosen": "x" * 100, "idx": i} for i in range(2000)]).encode()
    stream = io.BytesIO(data)
    rows = iter_json_list(stream, "big.json", chunk=256)
    assert next(rows)["idx"] == 0
    assert stream.tell() < 1024 < len(data)  # a chunk or two read, not the 240 kB file


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b'[{"a": 1} {"a": 2}]', "expected ',' or ']'"),
        (b'[{"a": 1}] trailing', "expected nothing after the list"),
        (b'[{"a": 1},', "not a readable JSON list"),
        (b'[{"a": 1', "not a readable JSON list"),
        (b'[{"a": tru}]', "not a readable JSON list"),
    ],
)
def test_broken_lists_fail_naming_the_file(text: bytes, found: str):
    with pytest.raises(IngestError, match=f"pairs.json: .*{found}"):
        list(iter_json_list(io.BytesIO(text), "pairs.json", chunk=3))


def test_jsonl_rows_keep_line_numbers_and_unicode_line_separators():
    data = b'{"a": 1}\n\n{"a": "one\xe2\x80\xa8row"}\n{broken\n'
    rows = list(iter_jsonl(io.BytesIO(data)))
    assert [i for i, _ in rows] == [0, 2, 3]
    assert rows[1][1] == {"a": "one\u2028row"}  # U+2028 is not a line break in JSONL
    assert isinstance(rows[2][1], Problem) and rows[2][1].reason == MALFORMED_ROW


def test_format_is_told_by_the_first_non_space_byte_and_the_stream_rewound():
    stream = io.BytesIO(b"\n" * 5000 + b'[{"a": 1}]')
    assert is_json_list(stream) and stream.tell() == 0
    assert not is_json_list(io.BytesIO(b'{"a": 1}\n'))
