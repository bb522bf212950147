"""The judge client against a real OpenAI-compatible HTTP server on 127.0.0.1, and the judged benchmarks."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from evalfiles import context, write_json, write_jsonl

from damo.config import JudgeConfig
from damo.eval import llava_bench, mmhal
from damo.eval.judge import Judge, JudgeError

KEY_ENV = "DAMO_TEST_JUDGE_KEY"


@dataclass
class FakeJudgeServer:
    """``/v1/chat/completions``: the next scripted status codes first, then ``reply(prompt)`` with 200."""

    reply: Callable[[str], str] = lambda prompt: "Rating: 4"
    statuses: list[int] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJudgeServer]:
    state = FakeJudgeServer()
    monkeypatch.setenv(KEY_ENV, "sk-test")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth = self.headers.get("Authorization")
            state.requests.append({"path": self.path, "auth": auth, "body": body})
            status = state.statuses.pop(0) if state.statuses else 200
            if status == 200:
                text = state.reply(body["messages"][-1]["content"])
                payload = {"id": "c1", "object": "chat.completion", "created": 0,
                           "model": body["model"] + "-v1",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}]}
            else:
                payload = {"error": {"message": f"scripted {status}", "type": "test"}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def judge_overrides(server: FakeJudgeServer, retries: int = 3) -> list[str]:
    return [f"evaluate.judge.base_url={server.url}", "evaluate.judge.model=test-judge",
            f"evaluate.judge.api_key_env={KEY_ENV}", f"evaluate.judge.max_retries={retries}",
            "evaluate.judge.backoff_s=0.01", "evaluate.judge.timeout_s=5"]


def _judge(server: FakeJudgeServer, sleeps: list[float], retries: int = 3) -> Judge:
    config = JudgeConfig(base_url=server.url, model="test-judge", api_key_env=KEY_ENV, max_retries=retries,
                         backoff_s=0.01, timeout_s=5)
    return Judge(config, sleep=sleeps.append)


def test_judge_retries_transient_errors_with_exponential_backoff(judge_server: FakeJudgeServer) -> None:
    """500 then 429 then 200: three requests, backoff 0.01 s then 0.02 s; the key comes from the env."""
    judge_server.statuses = [500, 429]
    sleeps: list[float] = []
    reply = _judge(judge_server, sleeps).ask("hello")
    assert (reply.text, reply.model) == ("Rating: 4", "test-judge-v1")
    assert len(judge_server.requests) == 3
    assert sleeps == pytest.approx([0.01, 0.02])
    first = judge_server.requests[0]
    assert first["auth"] == "Bearer sk-test" and first["path"] == "/v1/chat/completions"
    assert first["body"]["temperature"] == 0.0 and first["body"]["max_tokens"] == 1024


def test_judge_gives_up_after_max_retries_with_a_clear_error(judge_server: FakeJudgeServer) -> None:
    judge_server.statuses = [503, 503, 503, 503]
    with pytest.raises(JudgeError, match="failed after 3 attempts"):
        _judge(judge_server, [], retries=2).ask("hello")
    assert len(judge_server.requests) == 3


def test_judge_does_not_retry_a_refused_request(judge_server: FakeJudgeServer) -> None:
    judge_server.statuses = [401]
    with pytest.raises(JudgeError, match="refused"):
        _judge(judge_server, []).ask("hello")
    assert len(judge_server.requests) == 1


@pytest.mark.parametrize(("text", "rating"), [
    ("The response is accurate.\nRating: 5", 5),
    ("Rating: 3. To repeat, rating: 3", 3),  # the same rating twice is one rating
    ("Between rating: 2 and Rating: 5, I pick 5", None),  # two ratings → unrated, not guessed
    ("No score given.", None),
    ("Rating: 7", None),  # outside 0–6
])
def test_mmhal_rating_is_parsed_only_when_exactly_one_is_present(text: str, rating: int | None) -> None:
    assert mmhal.parse_rating(text) == rating


def _mmhal_data(tmp_path: Path) -> Path:
    rows = [{"question_type": t, "question_topic": "outdoor", "image_id": f"im{n}",
             "image_src": f"https://example.org/a/{n}.jpg", "image_content": ["Fire hydrant", "Tree"],
             "question": f"Question {n}?", "gt_answer": f"Answer {n}.", "model_answer": ""}
            for n, t in enumerate(["attribute", "adversarial", "attribute"])]
    return write_json(tmp_path / "mmhal" / "response_template.json", rows)


def test_unconfigured_or_keyless_judge_is_a_recorded_skip(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = [f"evaluate.data.mmhal_bench={_mmhal_data(tmp_path)}"]
    ctx = context(tmp_path, overrides)
    items = mmhal.load_items(ctx)
    answers = [{"id": it.id, "answer": "x"} for it in items]
    assert "evaluate.judge.base_url" in mmhal.score(ctx, items, answers, "mmhal_bench")["skipped"]
    monkeypatch.delenv(KEY_ENV, raising=False)
    keyless = context(tmp_path, [*overrides, "evaluate.judge.base_url=http://127.0.0.1:9/v1",
                                 "evaluate.judge.model=m", f"evaluate.judge.api_key_env={KEY_ENV}"])
    assert KEY_ENV in mmhal.score(keyless, items, answers, "mmhal_bench")["skipped"]


def test_mmhal_scores_through_the_judge_and_resumes(tmp_path: Path, judge_server: FakeJudgeServer) -> None:
    """Answers carry the rating the fake judge gives: 5, 1, none. Rated: 5 and 1 → average 3,
    hallucination rate (rating < 3) 1/2, per type: attribute 5 (item 2 unrated), adversarial 1."""
    judge_server.reply = lambda prompt: {"A5": "Good.\nRating: 5", "A1": "Wrong.\nRating: 1"}.get(
        prompt.rsplit("\n", 2)[-2], "I cannot decide.")
    data = _mmhal_data(tmp_path)
    ctx = context(tmp_path, [f"evaluate.data.mmhal_bench={data}", *judge_overrides(judge_server)])
    items = mmhal.load_items(ctx)
    assert items[1].image == tmp_path / "mmhal" / "images" / "1.jpg"
    answers = [{"id": "0", "answer": "A5"}, {"id": "1", "answer": "A1"}, {"id": "2", "answer": "A?"}]
    m = mmhal.score(ctx, items, answers, "mmhal_bench")
    assert m["average"] == pytest.approx(3.0)
    assert m["hallucination_rate"] == pytest.approx(0.5)
    assert m["per_type"] == {"adversarial": 1.0, "attribute": 5.0}
    assert (m["rated"], m["unrated"]) == (2, 1)
    assert m["judge_model"] == ["test-judge-v1"]
    prompt = judge_server.requests[0]["body"]["messages"][-1]["content"]
    assert "Fire hydrant, Tree" in prompt and "Question 0?" in prompt and "Answer 0." in prompt
    raw = [json.loads(line) for line in (ctx.out / "judge.mmhal_bench.jsonl").read_text().splitlines()]
    assert [r["judge_output"] for r in raw][:2] == ["Good.\nRating: 5", "Wrong.\nRating: 1"]
    mmhal.score(ctx, items, answers, "mmhal_bench")  # a rerun reuses the stored replies
    assert len(judge_server.requests) == 3


def test_llava_bench_relative_score_by_hand(tmp_path: Path, judge_server: FakeJudgeServer) -> None:
    """Judge first lines: conv "8 6", detail "10, 5", complex "no scores" (unscored).
    all: reference mean 9, model mean 5.5 → 61.11; conv 75; detail 50."""
    folder = tmp_path / "llava-bench"
    write_jsonl(folder / "questions.jsonl", [
        {"question_id": n, "image": "001.jpg", "text": f"Q{n}", "category": c}
        for n, c in enumerate(["conv", "detail", "complex"])])
    write_jsonl(folder / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": "A red car."}])
    write_jsonl(folder / "answers_gpt4.jsonl", [{"question_id": n, "text": f"Ref{n}"} for n in range(3)])
    replies = {"Q0": "8 6\nfine", "Q1": "10, 5\nshort", "Q2": "no scores"}
    judge_server.reply = lambda prompt: next(v for k, v in replies.items() if f"[Question]\n{k}\n" in prompt)
    ctx = context(tmp_path, [f"evaluate.data.llava_bench={folder}", *judge_overrides(judge_server)])
    items = llava_bench.load_items(ctx)
    m = llava_bench.score(ctx, items, [{"id": str(n), "answer": f"A{n}"} for n in range(3)], "llava_bench")
    assert m["relative_score"] == pytest.approx(5.5 / 9 * 100)
    assert m["conv"]["relative_score"] == pytest.approx(75.0)
    assert m["detail"]["relative_score"] == pytest.approx(50.0)
    assert (m["scored"], m["unscored"]) == (2, 1)
    first = judge_server.requests[0]["body"]["messages"]
    assert first[0]["role"] == "system" and "[Context]\nA red car." in first[1]["content"]


def test_mmhal_accepts_its_own_template_filled_with_model_answers(tmp_path: Path,
                                                                 judge_server: FakeJudgeServer) -> None:
    """Records without ids pair with the items by position: the template's ``model_answer`` is scored."""
    template = _mmhal_data(tmp_path)
    rows = json.loads(template.read_text())
    filled = [{**row, "model_answer": f"answer {n}"} for n, row in enumerate(rows)]
    prompt_file = tmp_path / "published_prompt.txt"  # a replacement prompt, as the published one would be
    prompt_file.write_text("Objects: {image_content}\nQ: {question}\nRef: {gt_answer}\nResponse: {response}")
    ctx = context(tmp_path, [f"evaluate.data.mmhal_bench={template}", *judge_overrides(judge_server),
                             f"evaluate.judge.mmhal_prompt={prompt_file}"])
    m = mmhal.score(ctx, mmhal.load_items(ctx), filled, "mmhal_bench")
    assert (m["rated"], m["average"]) == (3, 4.0)  # the fake judge's default reply: "Rating: 4"
    assert judge_server.requests[2]["body"]["messages"][-1]["content"] == (
        "Objects: Fire hydrant, Tree\nQ: Question 2?\nRef: Answer 2.\nResponse: answer 2")
