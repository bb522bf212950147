"""Rows of a JSON list or a JSONL file read as a stream: memory holds a chunk and the current row.

The DAMA authors ship their data as one JSON list; RLAIF-V-sized lists (83k rows of text) are
hundreds of megabytes, and ``json.loads`` of the whole would hold the text, the parsed objects and
the ingester's batch at once. Here the list is cut into items with ``JSONDecoder.raw_decode``
over a sliding text buffer; a row that spans chunks is retried with the buffer doubled, so a row
costs O(its size · log) however the chunks fall. Invalid UTF-8 is kept as surrogates
(``surrogateescape``) so validation quarantines just that row as non-UTF-8 text.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from damo.ingest.records import MALFORMED_ROW, IngestError, Problem

CHUNK_CHARS = 1 << 20
_SPACE = re.compile(r"[ \t\n\r]*")


class _Text:
    """A sliding window over the decoded stream: ``buf[pos:]`` is the text not consumed yet."""

    def __init__(self, stream: IO[bytes], chunk: int):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.stream, self.chunk = stream, chunk
        self.buf, self.pos, self.eof = "", 0, False

    def fill(self, chars: int) -> bool:
        """Drop the consumed text and append about ``chars`` more; False at the end of the stream."""
        data = self.stream.read(chars)
        self.eof = not data
        self.buf = self.buf[self.pos :] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return not self.eof

    def peek(self) -> str:
        """The next character that is not JSON whitespace, not consumed; "" at the end."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill(self.chunk):
                return ""

    def value(self, decoder: json.JSONDecoder) -> Any:
        """The JSON value starting at the next non-space character, consumed."""
        self.peek()
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.fill(max(self.chunk, len(self.buf))):  # the row may continue: read more
                    continue
                raise
            if end == len(self.buf) and self.fill(self.chunk):  # a number may go on in the next chunk
                continue
            self.pos = end
            return value


def iter_json_list(stream: IO[bytes], name: str, chunk: int = CHUNK_CHARS) -> Iterator[Any]:
    """The items of the JSON list in ``stream``, one at a time; IngestError naming ``name`` when the
    text is not a JSON list."""
    text, decoder = _Text(stream, chunk), json.JSONDecoder()

    def expected(what: str) -> IngestError:
        found = text.buf[text.pos : text.pos + 20] or "the end of the file"
        return IngestError(f"{name}: not a readable JSON list (expected {what}, found {found!r})")

    if text.peek() != "[":
        raise expected("'['")
    text.pos += 1
    if text.peek() == "]":
        text.pos += 1
    else:
        while True:
            try:
                yield text.value(decoder)
            except json.JSONDecodeError as err:
                raise IngestError(f"{name}: not a readable JSON list ({err.msg})") from err
            sep = text.peek()
            if sep not in (",", "]"):
                raise expected("',' or ']'")
            text.pos += 1
            if sep == "]":
                break
    if text.peek() != "":
        raise expected("nothing after the list")


def iter_jsonl(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """(line index, parsed row or Problem) for each non-blank line of a JSONL stream."""
    for i, raw in enumerate(stream):
        line = raw.decode("utf-8", errors="surrogateescape")
        if not line.strip():
            continue  # blank lines are not rows
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as err:
            yield i, Problem(MALFORMED_ROW, f"line {i + 1} is not JSON: {err.msg}")


def is_json_list(stream: IO[bytes]) -> bool:
    """True when the first non-space byte of a seekable stream is '['; the stream is rewound."""
    start = stream.tell()
    head = stream.read(4096)
    while head and not head.strip():
        head = stream.read(4096)
    stream.seek(start)
    return head.lstrip().startswith(b"[")
