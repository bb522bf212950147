"""The policy's word-level tokenizer and its LLaVA processor, built locally (no downloads).

Word level: every word of the world is one token and punctuation is split off, so "dog" and "red"
are single tokens (byte-level tokens collapse under DPO: notes/tiny-world-probe.md). Metaspace
pre-tokenisation keeps the spaces, so ``decode`` gives back ``"There is a red circle."`` exactly.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

from damo.config import TinyWorldConfig
from damo.tinyworld.vocab import QUESTIONS, all_words, caption

UNK, PAD, BOS, EOS, IMAGE = "<unk>", "<pad>", "<s>", "</s>", "<image>"
SPECIAL_TOKENS = [UNK, PAD, BOS, EOS, IMAGE]

# LLaVA-1.5's conversation format, for the content-list messages AutoProcessor users send.
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %} {% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# The CLIP image mean/std that LLaVA's processor uses: the policy's tower was trained with them.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


def prompt(question: str) -> str:
    """The generation prompt for one image and one question (what the chat template renders)."""
    return f"USER: {IMAGE} {question} ASSISTANT:"


def corpus() -> list[str]:
    """Training text for the tokenizer: every prompt, every word of the world, a caption."""
    return [*(prompt(q) for q in QUESTIONS), " ".join(all_words()), caption(["a red circle", "a dog"])]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer trained on :func:`corpus` (vocabulary sorted, so seed-independent)."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(prepend_scheme="never"), pre_tokenizers.Punctuation("isolated")])
    tok.decoder = decoders.Metaspace(prepend_scheme="never")
    tok.train_from_iterator(corpus(), trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=UNK, pad_token=PAD, bos_token=BOS, eos_token=EOS,
        extra_special_tokens={"image_token": IMAGE},
    )


def build_processor(cfg: TinyWorldConfig) -> LlavaProcessor:
    """Image processor + tokenizer + chat template; ``<image>`` expands to (size/patch)² tokens.

    The vision tower emits a CLS token plus (size/patch)² patch features; with
    ``vision_feature_select_strategy="default"`` the CLS is dropped, so the processor is told about
    that one extra token (``num_additional_image_tokens=1``) and the counts agree.
    """
    size = cfg.image_size
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size},
        image_mean=IMAGE_MEAN, image_std=IMAGE_STD,
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=build_tokenizer(), patch_size=cfg.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )


def image_seq_length(cfg: TinyWorldConfig) -> int:
    """Image tokens per image: one per patch (the CLS feature is dropped)."""
    if cfg.image_size % cfg.patch_size:
        raise ValueError(f"tiny_world.image_size ({cfg.image_size}) must be a multiple of "
                         f"tiny_world.patch_size ({cfg.patch_size})")
    return (cfg.image_size // cfg.patch_size) ** 2
