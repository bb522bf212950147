"""The one shape of every step: tracked, its config saved, its typed result written.

A library module (the train worker runs it on rank 0 too), used by every ``damo.steps`` module.

Every ``damo.steps.<step>.run`` puts its work inside :func:`run_step`, which

1. opens the step's tracker (:func:`damo.tracking.open_tracker`: an MLflow run, or the terminal) as a
   context manager, so that ANY exception — a damo error, a bug, Ctrl-C — closes the run FAILED and
   no run is ever left RUNNING;
2. logs the step's own params once (the resolved config is already logged by the tracker as
   flattened params, so a step logs only what the config does not hold: its paths, its world size);
3. runs the work, which returns a typed :class:`StepResult`;
4. saves the resolved config (``config.yaml``) and writes ``result.json`` from that result.

:class:`StepResult` is what the CLI prints, what a component returns as JSON and what the local
run's summary reads back (:meth:`StepResult.from_json`): readers use its typed fields, never JSON keys.
Its JSON is flat: the typed fields and the step's own figures (``stats``) side by side.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from damo.config import DamoConfig, save_resolved
from damo.tracking import TerminalTracker, Tracker, open_tracker

RESULT_FILE = "result.json"


@dataclass(frozen=True, eq=False)
class StepResult(Mapping[str, Any]):
    """A step's result: ``step``, its output folder, typed fields (in subclasses) and ``stats``.

    It reads as the mapping it serializes to (``result["delta_mean"]``), so a caller that only shows
    or forwards it needs no knowledge of the step.
    """

    step: str
    out: str | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)  # the step's own figures

    def __post_init__(self) -> None:
        clash = {f.name for f in dataclasses.fields(self)} & set(self.stats)
        if clash:  # a programming error: one key, one meaning
            raise ValueError(f"{type(self).__name__}: stats repeat the typed fields {sorted(clash)}")

    def as_dict(self) -> dict[str, Any]:
        typed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "stats"}
        if typed["out"] is None:
            del typed["out"]
        return {**typed, **self.stats}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The typed fields of ``cls`` from ``data``; every other key goes to ``stats``."""
        names = {f.name for f in dataclasses.fields(cls)} - {"stats"}
        typed = {k: v for k, v in data.items() if k in names}
        return cls(**typed, stats={k: v for k, v in data.items() if k not in names})

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.from_dict(json.loads(text))

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self.as_dict() == dict(other)

    __hash__ = None  # type: ignore[assignment]  # a mapping of figures: not hashable


R = TypeVar("R", bound=StepResult)


def write_result(out: Path, result: StepResult) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULT_FILE
    path.write_text(result.to_json())
    return path


def run_step(config: DamoConfig, step: str, out: Path | None, work: Callable[[Tracker], R], *,
             params: Mapping[str, Any] | None = None, track: bool = True) -> R:
    """Run ``work(tracker)`` as step ``step`` (see the module docstring); returns its result.

    ``out`` None: nothing is written (a step given no output folder). ``track`` False: the terminal
    tracker (a training rank other than 0, a step that records nothing in MLflow).
    """
    tracker: Tracker = open_tracker(config, step) if track else TerminalTracker()
    with tracker:
        if params:
            tracker.log_params(params)
        result = work(tracker)
        if out is not None:
            save_resolved(config, out)
            write_result(out, result)
    return result
