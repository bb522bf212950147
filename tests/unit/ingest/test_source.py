"""Image paths are resolved inside the image folder only: no `..`, no absolute paths, no symlink exits."""

from __future__ import annotations

from pathlib import Path

from damo.ingest.source import inside


def test_paths_inside_the_folder_resolve(tmp_path: Path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    assert inside(str(tmp_path / "imgs"), "sub/a.png") == str(tmp_path / "imgs" / "sub" / "a.png")
    assert inside(str(tmp_path / "imgs"), "sub/../a.png") == str(tmp_path / "imgs" / "a.png")
    assert inside("s3://bucket/imgs", "sub/a.png") == "s3://bucket/imgs/sub/a.png"


def test_escapes_are_refused(tmp_path: Path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    for rel in ("../secret.png", "sub/../../secret.png", str(tmp_path / "secret.png"), "link.png", "", "..",
                "s3://other/x.png", "\\\\server\\share.png"):
        assert inside(str(folder), rel) is None, rel
    assert inside("s3://bucket/imgs", "../other/x.png") is None
    assert inside("s3://bucket/imgs", "/x.png") is None
