"""Pairs → PairBatch: one image per pair; the response mask covers exactly the response tokens."""

from __future__ import annotations

from pathlib import Path

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
