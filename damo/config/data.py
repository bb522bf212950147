"""Config sections of the data steps: ``tiny_world``, ``ingest``, ``score``, ``reference``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from damo.config.base import Section

# --------------------------------------------------------------------------- tiny world
# How a tiny-world pair's rejected answer was made (damo.tinyworld.pairs).
PairKind = Literal["extra_object", "wrong_colour", "wrong_shape", "omission"]


class TinyWorldConfig(Section):
    """The offline stand-in world: synthetic pairs, a tiny LLaVA policy, a tiny CLIP."""

    num_pairs: int = Field(3000, ge=16)
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    image_size: int = Field(48, ge=16)
    max_shapes: int = Field(2, ge=1, le=3)  # shapes per image: 1..max_shapes
    # A shape's half-size, as (smallest, largest) fraction of the image side, capped by its column.
    # At the default the policy's tower barely perceives shape, so wrong-shape pairs are hard but not
    # learnable; at (0.19, 0.23), with sft_steps=3000, the tower encodes shape and the SFT policy
    # names shapes right (benchmarks/tiny_effect.md, "A hard yet learnable attribute"). The default
    # keeps the demo's worlds.
    shape_size: tuple[float, float] = (0.12, 0.2)
    # Share of rejected answers with a wrong colour/shape ("hard"); the rest add an absent object.
    hard_fraction: float = Field(0.5, ge=0.0, le=1.0)
    # Share of multi-shape scenes whose rejected answer instead stops one shape early (kind
    # `omission`): the mirror of an extra-object pair. Without it no pair ever prefers the " and"
    # that joins a true next shape, and DPO on "… square." over "… square and a dog." lowers that
    # " and" everywhere, breaking the grammar of two-shape answers (benchmarks/tiny_effect.md).
    omission_fraction: float = Field(0.5, ge=0.0, le=1.0)
    # SFT captions mention an absent object this often: the hallucination prior DPO must remove.
    caption_noise: float = Field(0.4, ge=0.0, le=1.0)
    # A second SFT stage of shape_noise_steps steps, vision tower and projector frozen, on captions
    # that name one of their shapes with a wrong kind with probability shape_noise. The language model
    # learns to doubt shapes its frozen features still encode: wrong-shape pairs become hard by
    # measurement (the SFT margin) yet learnable, once the shapes are large enough to see
    # (shape_size). Noise in the first stage instead would teach the tower less shape, and nothing
    # trained later could recover it (benchmarks/tiny_effect.md, "A hard yet learnable attribute").
    shape_noise: float = Field(0.0, ge=0.0, le=1.0)
    shape_noise_steps: int = Field(0, ge=0)
    # Share of pairs (every split) in which BOTH answers also mention the same absent object, so the
    # chosen answer is better than the rejected one but not perfect, as in real preference data (the
    # chosen answer of RLAIF-V is the less hallucinating of two samples). At 0 every chosen answer is
    # the exact description, and fine-tuning on the chosen answers alone removes the SFT prior as
    # well as any preference loss: the world could not show what a preference adds
    # (benchmarks/tiny_effect.md, "What the preference adds over its chosen answer"). Above 0 the
    # CLIP is also trained on such pairs (clip.invented_pair_loss), and the longest answers need
    # clip_context_length ≥ 19 (the build refuses to start otherwise). Not yet the default: the
    # demo's step count was chosen on worlds without it.
    chosen_noise: float = Field(0.0, ge=0.0, le=1.0)
    # Share of TRAINING pairs with chosen and rejected swapped (recorded per pair as `swapped`);
    # validation pairs stay clean.
    label_noise: float = Field(0.0, ge=0.0, lt=0.5)
    # The kinds of pair label_noise may swap (None: every kind). Swaps spread over every kind slow DPO
    # down without turning it (to first order; here the swapped wrong-colour/shape pairs also
    # regularise it), so DAMA does not beat DPO at matched drift on them. Swaps on one kind tilt DPO
    # away from that kind, and DAMA's per-pair β undoes the tilt (benchmarks/tiny_effect.md, "Label
    # errors on one kind of pair").
    label_noise_kinds: tuple[PairKind, ...] | None = None
    # A pair is "hard" when the SFT policy prefers its true answer by less than this many nats
    # (log p(true) − log p(hallucinating)), or CLIP does not prefer it (damo.tinyworld.hardness).
    hard_margin: float = Field(1.0, ge=0.0)
    # The policy: a CLIP-style vision tower (image_size / patch_size)² patches + a small Llama.
    patch_size: int = Field(12, ge=2)
    vision_width: int = Field(48, ge=8)
    vision_layers: int = Field(2, ge=1)
    # Which vision hidden state feeds the projector (LLaVA uses -2; -1 uses every tiny layer).
    vision_feature_layer: int = Field(-1, lt=0)
    text_width: int = Field(96, ge=8)
    text_layers: int = Field(3, ge=1)
    attention_heads: int = Field(4, ge=1)
    # Measured (report.json): 1000 steps at 1e-3 reach ~40% exact greedy descriptions; 2000 add little,
    # rates of 2e-3 and up stall at the caption-format loss without learning to see.
    sft_steps: int = Field(1000, ge=0)
    sft_batch_size: int = Field(16, ge=1)
    sft_learning_rate: float = Field(1e-3, gt=0)
    # Both pre-trainings: linear warm-up over this share of the steps, then cosine decay to zero.
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    # The CLIP: open_clip ViT + text transformer, trained with one hallucinated negative per image.
    clip_patch_size: int = Field(8, ge=2)
    clip_width: int = Field(64, ge=8)
    clip_layers: int = Field(2, ge=1)
    clip_embed_dim: int = Field(32, ge=4)
    # Tokens, with start and end, and one position to spare: the longest answer (two shapes and an
    # extra object) takes 15; with chosen_noise (one more object) 18. The build refuses answers that
    # do not fit rather than let CLIP judge them cut (damo.tinyworld.clip.check_fits).
    clip_context_length: int = Field(16, ge=8)
    clip_steps: int = Field(400, ge=0)
    clip_batch_size: int = Field(64, ge=2)
    clip_learning_rate: float = Field(2e-3, gt=0)
    # Held-out benchmark images (not in the pairs); quality is measured on them.
    eval_images: int = Field(128, ge=1)
    # Held-out images of a second set (in neither the pairs nor the benchmark) in the benchmark's
    # layout, to choose a checkpoint on (train.select) without tuning on the benchmark.
    selection_images: int = Field(256, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    max_new_tokens: int = Field(16, ge=4)

    @model_validator(mode="after")
    def _shape_noise_has_its_stage(self) -> TinyWorldConfig:
        if (self.shape_noise > 0) != (self.shape_noise_steps > 0):
            raise ValueError("shape_noise and shape_noise_steps go together: the shape-noise stage needs "
                             f"both above 0 (got shape_noise={self.shape_noise}, "
                             f"shape_noise_steps={self.shape_noise_steps})")
        return self

    @field_validator("label_noise_kinds")
    @classmethod
    def _noise_kinds_named(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None and not v:
            raise ValueError("label_noise_kinds names at least one kind of pair, or is null for every kind")
        return v

    @field_validator("shape_size")
    @classmethod
    def _shape_size_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0.0 < lo <= hi <= 0.5:
            raise ValueError(f"shape_size must be (smallest, largest) with 0 < smallest <= largest <= 0.5 "
                             f"(fractions of the image side), got {v}")
        return v


# --------------------------------------------------------------------------- ingest
class IngestConfig(Section):
    """Raw preference data → the preference dataset (DESIGN.md contract)."""

    # Reader by name (damo.ingest.readers.READERS); "auto" picks one from the files found.
    format: Literal["auto", "rlaif_v", "dama_json", "hf_datasets"] = "auto"
    # Folder (local or s3://) of images that rows name by path (DAMA JSON; parquet/arrow rows without
    # bytes); relative → beside the data file; None → the JSON's own folder (parquet/arrow: none).
    image_folder: str | None = None
    # Share of pairs put in "validation", chosen by a seeded hash of the pair id (stable under reordering).
    validation_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    split_seed: int = 0
    # Splits of an HF DatasetDict source (e.g. ["test"]) whose rows all go to "validation"; the other
    # rows are split by validation_fraction. Every name must be a split of the source.
    validation_splits: list[str] = Field(default_factory=list)
    shard_rows: int = Field(2048, ge=1)
    read_batch_rows: int = Field(256, ge=1)  # rows read and validated at once: bounds memory
    workers: int = Field(2, ge=1)  # threads decoding images for validation
    max_image_pixels: int = Field(89_478_485, ge=1)  # PIL's own decompression-bomb limit
    dedupe: bool = True
    id_length: int = Field(16, ge=8, le=64)  # hex digits of the sha256 pair id kept


# --------------------------------------------------------------------------- score
class ScoreConfig(Section):
    """CLIP hardness (DAMA.md §1)."""

    # An open_clip model name, or a folder (local or s3://) in open_clip's hf-hub layout
    # (open_clip_config.json + open_clip_model.safetensors; then clip_pretrained must be null).
    clip_model: str = "ViT-L-14-336"
    clip_pretrained: str | None = "openai"  # an open_clip tag, a local file or s3:// URI
    # softmax: one softmax over the pair's chosen ∪ rejected sub-sentences (DAMA.md §1); cosine: raw cos.
    score: Literal["softmax", "cosine"] = "softmax"
    splitter: Literal["rule"] = "rule"  # damo.hardness.splitter.SPLITTERS
    batch_size: int = Field(32, ge=1)  # pairs per forward pass (their sub-sentences go in one text batch)
    # Sub-sentences per text-tower forward: sorted by length, each chunk cut to its longest text.
    text_batch_size: int = Field(256, ge=1)
    num_workers: int = Field(2, ge=0)  # DataLoader processes decoding images and splitting texts
    # Tower dtype (damo.device.inference_dtype): auto = fp16 on GPU, bf16 on CPUs with native bf16,
    # else fp32. The softmax and sums always run in fp32.
    precision: Literal["auto", "fp16", "bf16", "fp32"] = "auto"
    # Image and sub-sentence features kept for reuse across batches (each; 0: none). Pairs share
    # images and sentences; 100k rows of ViT-L-14's 768 dims in half precision are ~150 MB per cache.
    feature_cache: int = Field(100_000, ge=0)
    histogram_bins: int = Field(50, ge=2)


# --------------------------------------------------------------------------- reference
class ReferenceConfig(Section):
    """Reference (SFT) log-probs stored as dataset columns."""

    batch_size: int = Field(8, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # Response positions that get full-vocabulary logits at once (bounds logits memory).
    logps_chunk_tokens: int = Field(1024, ge=1)
