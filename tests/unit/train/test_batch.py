"""Pairs → PairBatch: one image per pair; the response mask covers exactly the response tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from damo.data.dataset import PreferenceDataset
from damo.models import load_processor
from damo.train.batch import collate_pairs, completion_text


def test_prompt_comes_from_the_chat_template_and_the_response_follows_it(tiny_llava: Path) -> None:
    processor = load_processor(tiny_llava)
    prompt, completion = completion_text(processor, "what do you see", "a red circle")
    assert prompt == "USER: <image>\nwhat do you see ASSISTANT:"
    assert completion == " a red circle</s>"


def test_response_mask_selects_the_chosen_and_rejected_answers(tiny_llava: Path, tiny_pairs: Path) -> None:
    processor = load_processor(tiny_llava)
    rows = list(PreferenceDataset(tiny_pairs).iter_rows())[:3]
    batch = collate_pairs(processor, rows)
    b = len(rows)
    assert batch.pixel_values.shape[0] == b  # one image per pair, not per sequence
    assert batch.input_ids.shape[0] == 2 * b
    tokenizer = processor.tokenizer
    for i, row in enumerate(rows):
        for seq, text in ((i, row["chosen"]), (b + i, row["rejected"])):
            response = batch.input_ids[seq][batch.response_mask[seq]]
            assert tokenizer.decode(response).strip() == text + "</s>"
        # chosen and rejected share the same prompt (image tokens included)
        prompt = ~batch.response_mask & batch.attention_mask.bool()
        assert torch.equal(batch.input_ids[i][prompt[i]], batch.input_ids[b + i][prompt[b + i]])
    assert not (batch.response_mask & ~batch.attention_mask.bool()).any()  # padding is never a response


def test_through_fork_sums_a_rejected_answer_only_through_its_first_differing_token(
        tiny_llava: Path, tiny_pairs: Path) -> None:
    processor = load_processor(tiny_llava)
    row = next(PreferenceDataset(tiny_pairs).iter_rows())
    rows = [{**row, "chosen": "a red circle.", "rejected": "a blue circle."},  # the fork: " blue"
            {**row, "chosen": "a red circle.", "rejected": "a red circle and a dog."}]  # the fork: " and"
    batch = collate_pairs(processor, rows, "through_fork")
    everything = collate_pairs(processor, rows)
    tokenizer = processor.tokenizer

    def summed(b, seq: int) -> str:
        return tokenizer.decode(b.input_ids[seq][b.response_mask[seq]]).strip()

    assert [summed(batch, 2), summed(batch, 3)] == ["a blue", "a red circle and"]
    assert [summed(batch, 0), summed(batch, 1)] == ["a red circle.</s>"] * 2  # chosen answers: whole
    # The sequences themselves still run to the answer's end: only what is summed changes.
    assert torch.equal(batch.input_ids, everything.input_ids)
    assert torch.equal(batch.attention_mask, everything.attention_mask)


def test_an_unknown_rejected_tokens_setting_is_refused(tiny_llava: Path, tiny_pairs: Path) -> None:
    rows = list(PreferenceDataset(tiny_pairs).iter_rows())[:1]
    with pytest.raises(KeyError, match="after_fork"):
        collate_pairs(load_processor(tiny_llava), rows, "after_fork")
