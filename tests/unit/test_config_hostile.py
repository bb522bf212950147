"""Config parsing is bounded and every bad config is a one-line ConfigError (issue 15, findings 6, 8)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from damo.config import ConfigError, load_config

GENEROUS_S = 10.0
GENEROUS_GROWTH_KB = 200_000  # ru_maxrss is in KiB on Linux


def _bomb(levels: int = 9) -> str:
    """A billion-laughs alias bomb nested under typed keys (train.loss), 9^levels strings if expanded."""
    lines = ["train:", "  loss:", '    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"    l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_nested_alias_bomb_fails_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb\.yaml: line 4: YAML alias \*l0 refused"):
        load_config(str(path))
    assert time.monotonic() - start < GENEROUS_S
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < GENEROUS_GROWTH_KB


@pytest.mark.parametrize("body, match", [
    (b"seed: 1\nfoo: [\n", "not valid YAML"),
    (b"seed: \xff\xfe\n", "not UTF-8 text"),
    (b"- a\n- b\n", "the top level must be a mapping"),
    (b"[" * 5000, "not valid YAML|nested too deeply"),
])
def test_bad_config_files_are_config_errors(tmp_path: Path, body: bytes, match: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(body)
    with pytest.raises(ConfigError, match=match):
        load_config(str(path))


@pytest.mark.parametrize("override, match", [
    ("seed=[1", r"--set seed: not valid YAML"),
    ("seed=\udcff", r"--set seed: not valid YAML"),  # a non-UTF-8 argv byte, as Python decodes it
    ("seed=*x", r"--set seed: .*alias"),
])
def test_bad_set_values_are_config_errors(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])
