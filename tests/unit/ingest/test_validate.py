"""Per-row checks: texts, images (truncated, undecodable, bombs refused before decoding), pair ids."""

from __future__ import annotations

import time

from damo.ingest.records import RawRecord
from damo.ingest.validate import Checked, check_image, check_record, pair_id
from tests.unit.ingest.conftest import jpeg, png, png_bomb


def _record(**fields: object) -> RawRecord:
    base: dict = {"ref": "f#0", "question": "q?", "chosen": "a", "rejected": "b", "image": png()}
    return RawRecord(**{**base, **fields})


def test_a_good_record_passes_with_a_content_id():
    result = check_record(_record(), max_pixels=10_000, id_length=16)
    assert isinstance(result, Checked)
    assert result.id == pair_id(png(), "q?", "a", "b", 16) and len(result.id) == 16
    assert pair_id(png(), "q?", "a", "b", 16) != pair_id(png(), "q?", "b", "a", 16)
    assert pair_id(png(), "q", "?a", "b", 16) != pair_id(png(), "q?", "a", "b", 16)  # fields are separated


def test_text_faults():
    cases = {
        "missing_field": _record(question=None),
        "wrong_type": _record(chosen=3),
        "empty_text": _record(rejected=" \n"),
        "identical_responses": _record(chosen="same", rejected=" same"),
        "non_utf8_text": _record(question=b"\xff\xfe"),
    }
    for reason, record in cases.items():
        result = check_record(record, 10_000, 16)
        assert not isinstance(result, Checked) and result.reason == reason, reason
    assert isinstance(check_record(_record(question="caf\u00e9".encode()), 10_000, 16), Checked)
    assert check_record(_record(question="x\udcff"), 10_000, 16).reason == "non_utf8_text"  # type: ignore[union-attr]


def test_image_faults():
    assert check_image(png(), 10_000) is None
    assert check_image(b"GIF89a nonsense", 10_000).reason == "image_undecodable"  # type: ignore[union-attr]
    assert check_image(jpeg(size=(64, 64))[:300], 10_000).reason == "image_truncated"  # type: ignore[union-attr]
    assert check_image(png(size=(200, 100)), 10_000).reason == "image_too_large"  # type: ignore[union-attr]


def test_decompression_bomb_is_refused_from_its_header_without_decoding():
    start = time.perf_counter()
    problem = check_image(png_bomb(100_000, 100_000), max_pixels=89_478_485)  # 10^10 pixels: 30 GB if decoded
    assert problem is not None and problem.reason == "image_too_large"
    assert time.perf_counter() - start < 1.0
