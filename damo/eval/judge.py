"""A judge behind any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, SGLang, a gateway).

Base URL and model come from ``evaluate.judge``; the key only from the environment variable named by
``judge.api_key_env``. Each request is bounded (timeout, max tokens) and retried on transient errors
(connection, timeout, 429, 5xx) with exponential backoff; other errors (401, 400, ...) fail at once.
Every reply is kept raw with the model id the server reports, written incrementally so that a rerun
asks only for what is missing. A judge that is not configured is a recorded skip
(:func:`judge_unavailable`), a judge that fails is a :class:`JudgeError` — never an invented score.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from damo.config import JudgeConfig
from damo.errors import DamoError
from damo.eval.items import append_jsonl, drop_partial_line, iter_jsonl

log = logging.getLogger(__name__)

_TRANSIENT = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


class JudgeError(DamoError, RuntimeError):
    """The judge failed for good (after retries, or a non-transient error); the message says why."""


def judge_unavailable(config: JudgeConfig) -> str | None:
    """Why no judge can be asked (→ the benchmark is recorded as skipped), or None when one can."""
    missing = [name for name in ("base_url", "model") if getattr(config, name) is None]
    if missing:
        return f"no judge configured (evaluate.judge.{' and evaluate.judge.'.join(missing)} unset)"
    if not os.environ.get(config.api_key_env):
        return f"no judge API key: environment variable {config.api_key_env} is unset or empty"
    return None


@dataclass(frozen=True)
class JudgeReply:
    text: str
    model: str  # the model id the server reports


class Judge:
    """One chat-completion call per prompt, with bounded retries."""

    def __init__(self, config: JudgeConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        reason = judge_unavailable(config)
        if reason is not None:
            raise JudgeError(reason)
        self.config = config
        self._sleep = sleep
        # retries are ours (logged, configurable backoff), so the SDK's own are off
        self._client = openai.OpenAI(base_url=config.base_url, api_key=os.environ[config.api_key_env],
                                     timeout=config.timeout_s, max_retries=0)

    def ask(self, prompt: str, system: str | None = None) -> JudgeReply:
        messages: list[Any] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        cfg = self.config
        for attempt in range(cfg.max_retries + 1):
            try:
                resp = self._client.chat.completions.create(
                    model=str(cfg.model), messages=messages, temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens)
                text = resp.choices[0].message.content if resp.choices else None
                if text is None:
                    raise JudgeError(f"judge {cfg.model} at {cfg.base_url} returned no message content")
                return JudgeReply(text, resp.model or str(cfg.model))
            except _TRANSIENT as err:
                if attempt == cfg.max_retries:
                    raise JudgeError(f"judge {cfg.model} at {cfg.base_url} failed after "
                                     f"{attempt + 1} attempts: {err}") from err
                delay = min(cfg.backoff_s * 2**attempt, cfg.max_backoff_s)
                log.warning("judge request failed (%s); retry %d/%d in %.2fs",
                            type(err).__name__, attempt + 1, cfg.max_retries, delay)
                self._sleep(delay)
            except openai.OpenAIError as err:
                raise JudgeError(f"judge {cfg.model} at {cfg.base_url} refused the request: {err}") from err
        raise AssertionError("unreachable: the loop returns or raises")


def judge_all(judge: Judge, prompts: Sequence[tuple[str, str]], raw_path: Path,
              system: str | None = None) -> dict[str, dict[str, Any]]:
    """Ask ``(id, prompt)`` pairs not yet in ``raw_path`` (JSONL); return every id's raw record."""
    drop_partial_line(raw_path)
    previous = list(iter_jsonl(raw_path)) if raw_path.is_file() else []
    # replies of another judge model are not reused: scores of different judges are not comparable
    done = {str(r["id"]): r for r in previous if r.get("requested_model") == judge.config.model}
    for key, prompt in prompts:
        if key in done:
            continue
        reply = judge.ask(prompt, system)
        record = {"id": key, "judge_model": reply.model, "requested_model": judge.config.model,
                  "judge_output": reply.text}
        append_jsonl(raw_path, [record])
        done[key] = record
    return done
