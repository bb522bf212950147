"""What a step reports to: the :class:`Tracker` protocol, and the terminal tracker (no server).

Trackers close as context managers: ``with tracker:`` ends the run FINISHED, or FAILED when the body
raises anything at all (:class:`ClosingTracker`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

log = logging.getLogger("damo.tracking")


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def close(self, status: str = "FINISHED") -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class ClosingTracker(ABC):
    """``with open_tracker(...) as t:`` closes the run FINISHED, or FAILED when the body raises."""

    @abstractmethod
    def close(self, status: str = "FINISHED") -> None: ...

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close("FAILED" if kind is not None else "FINISHED")


class TerminalTracker(ClosingTracker):
    """No tracking server: metrics go to the log (the progress bar shows the rest)."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        log.debug("params: %s", dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        log.info("step %s: %s", step, shown)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        log.debug("artifact (not uploaded, no tracking URI): %s", path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        log.debug("tags: %s", dict(tags))

    def log_text(self, text: str, artifact_file: str) -> None:
        log.debug("text artifact (not uploaded, no tracking URI): %s", artifact_file)

    def close(self, status: str = "FINISHED") -> None:
        return None
