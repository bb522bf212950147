"""Config section ``evaluate``: benchmarks, decodings, the judge."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from damo.config.base import Section


# --------------------------------------------------------------------------- evaluate
class JudgeConfig(Section):
    """An OpenAI-compatible judge; the key comes from the environment variable named here.

    Unset ``base_url``/``model`` (or an unset key variable) → judged benchmarks are recorded as
    skipped, never scored. Each request is bounded (``timeout_s``, ``max_tokens``) and retried
    ``max_retries`` times on transient errors with exponential backoff from ``backoff_s``.
    """

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "DAMO_JUDGE_API_KEY"
    max_retries: int = Field(4, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    backoff_s: float = Field(2.0, ge=0.0)
    max_backoff_s: float = Field(60.0, ge=0.0)
    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    # Files replacing the built-in judge prompts (e.g. the published ones, for comparable numbers):
    # MMHal a template with {image_content} {question} {gt_answer} {response}; LLaVA-Bench a
    # rule.json in LLaVA's format ({"llava_bench_<category>": {"prompt": ...}}).
    mmhal_prompt: str | None = None
    llava_bench_rule: str | None = None


class DecodingConfig(Section):
    """One decoding of a benchmark's prompts; its ``name`` tags the answers file and the metrics."""

    name: str = "greedy"
    do_sample: bool = False
    num_beams: int = Field(1, ge=1)
    temperature: float = Field(1.0, gt=0)  # used only when do_sample (temperature 0 = greedy/beam)
    top_p: float = Field(1.0, gt=0, le=1.0)
    max_new_tokens: int | None = Field(None, ge=1)  # None → evaluate.max_new_tokens
    # Answers per prompt (sampling only): rates are then over all samples, so a small benchmark
    # (the tiny world's held-out images) gives a steadier sampled estimate.
    samples: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> DecodingConfig:
        if self.samples > 1 and not self.do_sample:
            raise ValueError(f"decoding {self.name!r}: samples > 1 needs do_sample (greedy repeats itself)")
        return self


def _default_decodings() -> dict[str, list[DecodingConfig]]:
    greedy = DecodingConfig()
    return {
        # RLAIF-V's LLaVA-1.5 Object HalBench convention: 3 beams, temperature 0.
        "object_halbench": [DecodingConfig(name="beam3", num_beams=3)],
        # Sampling shows the SFT policy's hallucination prior that greedy decoding hides
        # (notes/tiny-world-probe.md); greedy is reported beside it. The first one is primary.
        "tiny_world": [DecodingConfig(name="sampled", do_sample=True, temperature=1.0, samples=4), greedy],
    }


class EvaluateConfig(Section):
    """Benchmarks: tiny_world, object_halbench, amber, pope, mmhal_bench, llava_bench.

    ``data`` keys: each benchmark's path, plus ``coco_annotations`` (folder of COCO 2014
    instances/captions JSON), ``coco_synonyms`` (RLAIF-V's synonyms_refine.txt), ``coco_images``
    (POPE's COCO val2014 images) and ``amber_images``. Paths are local or s3://.
    """

    benchmarks: list[str] = Field(default_factory=lambda: ["tiny_world"])
    data: dict[str, str] = Field(default_factory=dict)  # benchmark → local or s3:// path
    data_cache: str = ".damo/cache/eval-data"  # where s3:// data is fetched to (once per URI)
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # of the generating model (damo.device)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    # benchmark → its decodings (first = primary); benchmarks not named here decode greedily.
    decoding: dict[str, list[DecodingConfig]] = Field(default_factory=_default_decodings)
    limit: int | None = Field(None, ge=1)  # first N prompts per benchmark (smoke runs)
    # Items without an answer: an error, or (true) a recorded `coverage` < 1 that the registry gate
    # refuses to promote on. Duplicate answers are always an error.
    allow_missing_answers: bool = False
    # Appended (after a newline) to yes/no questions (POPE, AMBER discriminative), as LLaVA does.
    short_answer_prompt: str = "Answer the question using a single word or phrase."
    # AMBER yes/no: "exact" = the official scorer (response must equal "Yes"/"No");
    # "first_word" = the first word, case and punctuation ignored.
    amber_answer_parse: Literal["exact", "first_word"] = "first_word"
    amber_query_file: str = "query/query_all.json"  # relative to data["amber"]
    # AMBER generative nouns: NLTK's averaged perceptron tagger (official; its pickle in $DAMO_NLTK_DATA)
    # or "none" (every token a noun candidate: not the official number). damo.eval.amber
    amber_tagger: Literal["perceptron", "none"] = "perceptron"
    # spaCy model of the official word similarity (en_core_web_lg); null = exact match only (not official)
    amber_similarity: str | None = "en_core_web_lg"
    amber_similarity_threshold: float = Field(0.8, ge=0, le=1)
    # Object HalBench: departures from RLAIF-V's official matching (damo.eval.chair.DEVIATIONS);
    # none = the official numbers.
    chair_deviations: list[Literal["men_as_person", "split_punctuation"]] = Field(default_factory=list)
    pope_splits: list[str] = Field(default_factory=lambda: ["random", "popular", "adversarial"])
