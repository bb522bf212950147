"""The tiny open_clip model: built from a config dict, trained contrastively, saved in hf-hub layout.

The folder (``open_clip_config.json`` with ``model_cfg``/``preprocess_cfg`` + ``open_clip_model.safetensors``)
is what ``open_clip.create_model_and_transforms("local-dir:<folder>")`` reads, so any open_clip user
can load it; :func:`load_clip_folder` does exactly that. Training uses in-batch negatives plus one
hallucinated description per image (an extra object or a wrong attribute), so the model learns that
"and a dog" or "a blue circle" does not fit the image — what CLIP hardness scoring asks of it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from damo.config import TinyWorldConfig
from damo.tinyworld.optim import fit
from damo.tinyworld.pairs import rejection, with_invented_object
from damo.tinyworld.vocab import Scene, describe

log = logging.getLogger(__name__)
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
# open_clip's SimpleTokenizer vocabulary size: the text tower must embed all of its ids.
SIMPLE_TOKENIZER_VOCAB = 49408

Tokenizer = Callable[[list[str]], torch.Tensor]


def clip_config(cfg: TinyWorldConfig) -> dict[str, Any]:
    """The open_clip ``model_cfg`` of the tiny CLIP (a ViT and a text transformer)."""
    return {
        "embed_dim": cfg.clip_embed_dim,
        "vision_cfg": {"image_size": cfg.image_size, "layers": cfg.clip_layers, "width": cfg.clip_width,
                       "patch_size": cfg.clip_patch_size,
                       "head_width": cfg.clip_width // cfg.attention_heads},
        "text_cfg": {"context_length": cfg.clip_context_length, "vocab_size": SIMPLE_TOKENIZER_VOCAB,
                     "width": cfg.clip_width, "heads": cfg.attention_heads, "layers": cfg.clip_layers},
    }


Preprocess = Callable[[Image.Image], torch.Tensor]


def build_clip(cfg: TinyWorldConfig, seed: int) -> tuple[open_clip.CLIP, Preprocess, Tokenizer]:
    """A freshly initialised tiny CLIP with its eval preprocess and tokenizer."""
    model_cfg = clip_config(cfg)
    torch.manual_seed(seed)
    model = open_clip.CLIP(model_cfg["embed_dim"], open_clip.CLIPVisionCfg(**model_cfg["vision_cfg"]),
                           open_clip.CLIPTextCfg(**model_cfg["text_cfg"]))
    preprocess = open_clip.image_transform(cfg.image_size, is_train=False)
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg.clip_context_length)
    return model, preprocess, tokenizer


def train_clip(model: open_clip.CLIP, tokenizer: Tokenizer, pixels: torch.Tensor, scenes: list[Scene],
               cfg: TinyWorldConfig, seed: int) -> list[float]:
    """``cfg.clip_steps`` AdamW steps of CLIP loss with one hallucinated negative text per image.

    ``pixels`` (N, 3, H, W): preprocessed images of ``scenes``. Image→text logits are (B, 2B): the
    B descriptions then the B hallucinated ones; text→image logits are (B, B).
    """
    rng, inventions = random.Random(f"clip-{seed}"), random.Random(f"clip-invented-{seed}")
    torch.manual_seed(seed)

    def batch_loss() -> torch.Tensor:
        idx = [rng.randrange(len(scenes)) for _ in range(cfg.clip_batch_size)]
        positives = [describe(scenes[i]) for i in idx]
        negatives = [rejection(scenes[i], rng, cfg.hard_fraction).text for i in idx]
        image_features = model.encode_image(pixels[idx], normalize=True)
        text_features = model.encode_text(tokenizer(positives + negatives), normalize=True)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, : len(idx)].T, target)) / 2
        if cfg.chosen_noise > 0:  # the default world's CLIP is untouched: no draw, no extra term
            loss = loss + invented_pair_loss(model, tokenizer, image_features, positives, negatives,
                                             cfg.chosen_noise, inventions)
        return loss

    return fit(model, batch_loss, cfg.clip_learning_rate, cfg.clip_steps, cfg.warmup_ratio, "clip")


def invented_pair_loss(model: open_clip.CLIP, tokenizer: Tokenizer, image_features: torch.Tensor,
                       positives: list[str], negatives: list[str], share: float, rng: random.Random
                       ) -> torch.Tensor:
    """Rank ``chosen + a cat`` over ``rejected + a cat`` for the first ``share`` of the batch.

    The contrastive loss teaches CLIP the true description over every hallucinating one, but never
    one hallucinating answer over a worse one. Without this term the tiny CLIP preferred the answer
    naming two absent objects over the one naming one in 99.6% of a chosen-noise world's
    extra-object pairs, inverting their δ (benchmarks/tiny_effect.md). ``image_features`` (B, D),
    normalised; the pairs are built as the world builds them (:func:`pairs.with_invented_object`).
    """
    count = max(1, round(share * len(positives)))
    pairs = [with_invented_object({"chosen": better, "rejected": worse, "hallucinated": []}, rng)
             for better, worse in zip(positives[:count], negatives[:count])]
    texts = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    text_features = model.encode_text(tokenizer(texts), normalize=True)
    sims = torch.stack([(text_features[:count] * image_features[:count]).sum(-1),
                        (text_features[count:] * image_features[:count]).sum(-1)], dim=1)
    return F.cross_entropy(model.logit_scale.exp() * sims, torch.zeros(count, dtype=torch.long))


def save_clip(model: open_clip.CLIP, cfg: TinyWorldConfig, folder: Path) -> None:
    """Write the hf-hub layout open_clip's ``local-dir:`` loader reads."""
    folder.mkdir(parents=True, exist_ok=True)
    preprocess_cfg = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    config = {"model_cfg": clip_config(cfg), "preprocess_cfg": preprocess_cfg}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))


def load_clip_folder(path: str | Path) -> tuple[open_clip.CLIP, Preprocess, Tokenizer]:
    """(model in eval mode, image preprocess, tokenizer) of a CLIP folder in open_clip's hf-hub layout."""
    folder = Path(path)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not an open_clip folder: {name} is missing")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    return model, preprocess, tokenizer


def check_fits(tokens: torch.Tensor, texts: list[str]) -> None:
    """Refuse texts that the tokenizer cut to its context: CLIP would judge a text it never read whole.

    open_clip's SimpleTokenizer truncates silently and then puts the end-of-text token in the last
    position; a text that exactly fills the context looks the same, so it is refused too (a text must
    leave the last position as padding).
    """
    cut = [text for text, row in zip(texts, tokens) if int(row[-1]) != 0]
    if cut:
        raise ValueError(f"{len(cut)} text(s) longer than the tiny CLIP's {tokens.shape[1]}-token context "
                         f"(tiny_world.clip_context_length), e.g. {cut[0]!r}")


def check_answers_fit(cfg: TinyWorldConfig, rows: list[dict[str, Any]]) -> None:
    """Before anything is trained: every chosen and rejected answer fits the tiny CLIP's context."""
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg.clip_context_length)
    texts = sorted({row[key] for row in rows for key in ("chosen", "rejected")}, key=len, reverse=True)
    check_fits(tokenizer(texts), texts)


@torch.no_grad()
def similarities(model: open_clip.CLIP, tokenizer: Tokenizer, pixels: torch.Tensor,
                 texts: list[list[str]]) -> list[torch.Tensor]:
    """Cosine similarity of image i (``pixels`` (N, 3, H, W)) with each of its texts ``texts[i]``."""
    image_features = model.encode_image(pixels, normalize=True)
    flat = [t for group in texts for t in group]
    tokens = tokenizer(flat)
    check_fits(tokens, flat)
    text_features = model.encode_text(tokens, normalize=True)
    out, start = [], 0
    for i, group in enumerate(texts):
        out.append(text_features[start:start + len(group)] @ image_features[i])
        start += len(group)
    return out
