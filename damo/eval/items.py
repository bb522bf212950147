"""What every benchmark shares: prompts (:class:`EvalItem`), answer records, JSONL files, data paths.

An answer record is one JSON line: ``id``, ``benchmark``, ``decoding`` (its name), ``decoding_config``,
``model``, ``question``, ``answer`` plus the item's ``meta`` (e.g. ``image_id``, ``label``). Files are
appended line by line and flushed, so an interrupted run keeps what it wrote and a rerun skips the
ids already present.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from damo import storage
from damo.config import DamoConfig
from damo.errors import DamoError

log = logging.getLogger(__name__)


Answers = list[dict[str, Any]]  # answer records (see the module docstring)


class BenchmarkDataError(DamoError, ValueError):
    """Benchmark data is missing or malformed; the message names the config key or file."""


@dataclass(frozen=True)
class EvalItem:
    """One prompt: an image (encoded bytes or a file) and a question; ``meta`` travels to the answer."""

    id: str
    question: str
    image: bytes | Path
    meta: dict[str, Any] = field(default_factory=dict)

    def load_image(self) -> Image.Image:
        source = io.BytesIO(self.image) if isinstance(self.image, bytes) else self.image
        try:
            with Image.open(source) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as err:
            raise BenchmarkDataError(f"item {self.id}: cannot read its image ({err})") from err


@dataclass(frozen=True)
class BenchContext:
    """What a benchmark's loader and scorer get: the config and a folder for side outputs."""

    config: DamoConfig
    out: Path  # details and raw judge outputs go here
    cache: Path  # s3:// data is fetched here
    generate: bool = True  # False (scoring given answers): image folders are neither needed nor fetched

    def data_path(self, key: str) -> Path:
        """``config.evaluate.data[key]`` as a local path (fetched once from s3://)."""
        uri = self.config.evaluate.data.get(key)
        if uri is None:
            raise BenchmarkDataError(
                f"evaluate.data[{key!r}] is not set: give the path (local or s3://), e.g. "
                f"--set evaluate.data.{key}=PATH (see notes/benchmarks.md for where the data comes from)")
        # an s3:// fetch is remembered (after it completed) so that reruns and baselines reuse it
        marker = self.cache / f"{key}.fetched.json"
        if storage.is_s3(uri) and marker.is_file():
            fetched = json.loads(marker.read_text())
            if fetched["uri"] == uri and Path(fetched["path"]).exists():
                return Path(fetched["path"])
        try:
            path = storage.download(uri, self.cache / key)
        except storage.StorageError as err:
            raise BenchmarkDataError(f"evaluate.data[{key!r}] = {uri!r}: {err}") from err
        if storage.is_s3(uri):
            marker.write_text(json.dumps({"uri": uri, "path": str(path)}))
        return path

    def image_dir(self, key: str) -> Path:
        """An image folder: fetched when generating; when only scoring, a placeholder path."""
        if self.generate:
            return self.data_path(key)
        return Path(self.config.evaluate.data.get(key, "."))

    def limited(self, items: list[EvalItem]) -> list[EvalItem]:
        limit = self.config.evaluate.limit
        return items[:limit] if limit is not None else items


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BenchmarkDataError(f"{path}: not readable JSON ({err})") from err


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file: every non-blank line must be a JSON object, else an error naming the
    line (an unfinished line of an interrupted write is cut by :func:`drop_partial_line` first)."""
    try:
        with path.open(encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BenchmarkDataError(f"{path}: not a readable UTF-8 JSONL file ({err})") from err
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchmarkDataError(f"{path}:{n}: not JSON ({err})") from err
        if not isinstance(record, dict):
            raise BenchmarkDataError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
        yield record


def read_records(path: Path) -> list[dict[str, Any]]:
    """A ``.jsonl`` file or a ``.json`` list (AMBER's answer format) as a list of dicts."""
    if not path.is_file():
        raise BenchmarkDataError(f"answers file {path} does not exist or is not a file")
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BenchmarkDataError(f"{path}: expected a JSON list of answer records (objects)")
        return data
    return list(iter_jsonl(path))


def drop_partial_line(path: Path) -> None:
    """Cut an unfinished last line (a write interrupted mid-record) so that appends start clean."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        log.warning("%s: dropping an unfinished last line", path)
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def answer_text(record: dict[str, Any]) -> str:
    """The answer of a record from us (``answer``), AMBER (``response``), LLaVA/RLAIF-V (``text``) or
    MMHal-Bench's filled template (``model_answer``)."""
    for key in ("answer", "response", "text", "caption", "model_answer"):
        if isinstance(record.get(key), str):
            return str(record[key]).replace("Assistant:", "").strip()
    raise BenchmarkDataError(f"answer record {record.get('id')!r} has no answer/response/text field")


def record_id(record: dict[str, Any]) -> str:
    """The item an answer is for: ``item_id`` (one of several samples), ``id``, else LLaVA's
    ``question_id`` (prefixed ``<split>/`` when the record names a POPE split)."""
    if "item_id" in record:
        return str(record["item_id"])
    if "id" in record:
        return str(record["id"])
    if "question_id" in record:
        split = record.get("split")
        return f"{split}/{record['question_id']}" if split else str(record["question_id"])
    raise BenchmarkDataError(f"answer record without id or question_id: {json.dumps(record)[:120]}")


def _positional(answers: list[dict[str, Any]], items: list[EvalItem]) -> bool:
    with_ids = any("id" in r or "question_id" in r for r in answers)
    return bool(answers) and len(answers) == len(items) and not with_ids


def _answer_item(record: dict[str, Any]) -> str:
    """The item an answer is for; Object HalBench answers may carry only their ``image_id``."""
    if "image_id" in record and not any(k in record for k in ("item_id", "id", "question_id")):
        return str(record["image_id"])
    return record_id(record)


def coverage(answers: list[dict[str, Any]], items: list[EvalItem], benchmark: str,
             allow_missing: bool) -> dict[str, Any]:
    """``{"coverage", "answered", "items"}`` of ``answers`` over ``items``, refusing false numbers.

    Two answers with one id are an error (a duplicate would weigh its item twice). An item without an
    answer is an error, since the score would then be over a subset, unless ``allow_missing``
    (``evaluate.allow_missing_answers``): then coverage < 1 is recorded and the registry gate refuses
    to promote on it (:func:`damo.model_card.gate_decision`).
    """
    if not items or _positional(answers, items):
        return {"coverage": 1.0 if items else None, "answered": len(answers), "items": len(items)}
    seen = Counter(str(r["id"]) if "id" in r else _answer_item(r) for r in answers)
    repeated = [(k, n) for k, n in seen.items() if n > 1]
    if repeated:
        key, n = repeated[0]
        raise BenchmarkDataError(f"{benchmark}: {len(repeated)} answer id(s) appear more than once (e.g. "
                                 f"{key!r} {n} times); a duplicate would count its item twice")
    covered = {_answer_item(r) for r in answers}
    unknown = sorted(covered - {it.id for it in items})
    if unknown:
        raise BenchmarkDataError(f"{benchmark}: answer id {unknown[0]!r} is not an item of the benchmark "
                                 f"({len(unknown)} unknown id(s))")
    missing = [it.id for it in items if it.id not in covered]
    share = (len(items) - len(missing)) / len(items)
    if missing and not allow_missing:
        raise BenchmarkDataError(
            f"{benchmark}: no answer for {len(missing)} of {len(items)} items (e.g. {missing[0]!r}); a score "
            "over the answered ones would be false: answer every item, or set "
            f"evaluate.allow_missing_answers=true to record coverage {share:.4g} (the registry gate then "
            "refuses to promote)")
    return {"coverage": share, "answered": len(items) - len(missing), "items": len(items)}


def by_id(answers: list[dict[str, Any]], items: list[EvalItem], benchmark: str) -> list[tuple[EvalItem, str]]:
    """Pair each answer with its item; an answer for an unknown id is an error, not silently dropped.

    Records without any id pair with the items by position when there are as many of each (the
    benchmark's own template filled in, as MMHal-Bench's ``model_answer``).
    """
    if _positional(answers, items):
        return [(item, answer_text(r)) for item, r in zip(items, answers)]
    index = {it.id: it for it in items}
    pairs = []
    for record in answers:
        key = record_id(record)
        if key not in index:
            raise BenchmarkDataError(f"{benchmark}: answer id {key!r} is not an item of the benchmark")
        pairs.append((index[key], answer_text(record)))
    return pairs
