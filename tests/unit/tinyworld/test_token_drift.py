"""benchmarks/tiny_token_drift.py: per-token log-probs that add up to the trainer's summed ones, forks
found where the answers first differ, and no shift at all for a model measured against itself."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from damo.contract import PAIR_COLUMNS, VALIDATION_SPLIT
from damo.data.dataset import PreferenceDataset
from damo.eval.tiny_world import load_grammar
from damo.models import load_model, load_processor
from damo.train.batch import collate_pairs
from damo.train.logps import PairLogps

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import tiny_token_drift


def test_the_fork_is_the_first_differing_token_or_the_end_of_the_shorter_answer() -> None:
    assert tiny_token_drift.fork([5, 6, 7, 2], [5, 6, 9, 2]) == 2
    assert tiny_token_drift.fork([5, 6, 2], [5, 6, 8, 9, 2]) == 2  # "…square." against "…square and a dog."
    assert tiny_token_drift.fork([5, 6], [5, 6]) == 2


def test_regions_split_an_answer_around_its_fork() -> None:
    assert tiny_token_drift.regions(5, 2) == ["prefix", "prefix", "fork", "after", "end"]


def test_token_logps_sum_to_the_trainers_response_logps(tiny_world_quick: Path) -> None:
    policy = tiny_world_quick / "policy"
    rows = PreferenceDataset(tiny_world_quick / "data").read(list(PAIR_COLUMNS)).to_pylist()[:6]
    batch = collate_pairs(load_processor(policy), rows)
    model = load_model(policy, "fp32").eval()
    with torch.inference_mode():
        dists = tiny_token_drift.response_logps(model, batch)
        chosen, rejected = PairLogps(model, chunk_tokens=4096)(batch)
    ids = tiny_token_drift.response_ids(batch)
    summed = torch.stack([d.gather(-1, torch.tensor(i)[:, None]).sum() for d, i in zip(dists, ids)])
    assert torch.allclose(summed, torch.cat([chosen, rejected]).float(), atol=1e-4)


def test_the_grammar_allows_exactly_the_words_that_keep_a_caption_well_formed(tiny_world_quick: Path) -> None:
    processor = load_processor(tiny_world_quick / "policy")
    tokenizer = processor.tokenizer
    pattern = load_grammar(tiny_world_quick / "benchmark")
    assert pattern is not None
    grammar = tiny_token_drift.Grammar(pattern.pattern, tokenizer, len(tokenizer) + 8)

    def words(prefix: str) -> set[str]:
        allowed = grammar.allowed(prefix)
        return {"</s>" if i == grammar.eos else grammar.strings[i] for i in range(len(allowed)) if allowed[i]}

    assert words("There is a red") == {" circle", " square", " triangle"}
    assert words("There is a red circle") == {" and", "."}
    assert words("There is a red circle.") == {"</s>"}
    assert " dog" in words("There is a red circle and a")
    assert words("There is a red circle and a dog and a") == set()  # two objects: already outside
    distribution = torch.log_softmax(torch.zeros(len(tokenizer) + 8), dim=0)  # uniform over the ids
    ids = tokenizer("There is a red circle", add_special_tokens=False)["input_ids"]
    masses = grammar.mass(ids, distribution.expand(len(ids), -1))
    # Position i is the draw of token i: " red" after "There is a" (four colours), " circle" after it
    # (three shapes).
    vocab = len(tokenizer) + 8
    assert masses[-2:] == pytest.approx([math.log(4 / vocab), math.log(3 / vocab)])


def test_a_model_measured_against_itself_moves_no_token(tiny_world_quick: Path) -> None:
    pairs = PreferenceDataset(tiny_world_quick / "data").read(split=VALIDATION_SPLIT).num_rows
    assert pairs > 0
    shifts = tiny_token_drift.measure(tiny_world_quick / "data", tiny_world_quick,
                                      {"same": tiny_world_quick / "policy"})["same"]
    assert shifts["n:token/rejected/fork"] == pairs
    assert any(k.startswith("fork mass/") for k in shifts) and any(k.startswith("grammar") for k in shifts)
    measured = {key: value for key, value in shifts.items() if not key.startswith("n:")}
    assert all(value == pytest.approx(0.0, abs=1e-6) for value in measured.values())
