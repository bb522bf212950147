"""The policy's tokenizer: one token per word of the world; the processor's image-token count."""

from __future__ import annotations

import torch
from PIL import Image

from damo.config import TinyWorldConfig
from damo.tinyworld.policy import build_policy, processor_image_tokens
from damo.tinyworld.tokenizer import build_processor, build_tokenizer, image_seq_length, prompt
from damo.tinyworld.vocab import SYNONYMS, all_words, caption


def test_every_world_word_is_one_known_token() -> None:
    tok = build_tokenizer()
    assert set(SYNONYMS) <= set(all_words())  # every canonical vocabulary word is a world word
    for word in all_words():
        ids = tok(" " + word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tok.unk_token_id, word


def test_decode_gives_the_caption_back() -> None:
    tok = build_tokenizer()
    text = caption(["a red circle", "a blue square", "a dog"])
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_processor_image_tokens_match_the_model() -> None:
    cfg = TinyWorldConfig(image_size=48, patch_size=12)
    processor = build_processor(cfg)
    model = build_policy(cfg, processor, seed=0)
    batch = processor(images=[Image.new("RGB", (48, 48))], text=[prompt("What do you see?")],
                      return_tensors="pt")
    n_image = int((batch["input_ids"] == model.config.image_token_index).sum())
    assert n_image == model.config.image_seq_length == image_seq_length(cfg) == 16
    assert processor_image_tokens(processor) == 16
    with torch.no_grad():
        out = model(**batch)  # fails with "Image features and image tokens do not match" otherwise
    assert out.logits.shape == (1, batch["input_ids"].shape[1], len(processor.tokenizer))
