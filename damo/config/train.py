"""Config section ``train``: the loss (DAMA.md), LoRA, the optimizer, batches, DeepSpeed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from damo.config.base import Section


# --------------------------------------------------------------------------- train
class LossConfig(Section):
    """The DAMA loss (DAMA.md §2–3); ``arm`` picks the ablation."""

    arm: Literal["dpo", "data", "model", "dama", "beta_dpo"] = "dama"
    beta: float = Field(0.1, gt=0)
    keep_ratio: float = Field(0.8, gt=0.0, le=1.0)
    gamma: float = Field(0.9, ge=0.0, lt=1.0)
    beta_min: float = Field(1e-3, ge=0.0)
    # α_M: mean of σ(R_kept)/σ(R̄) (the authors' code) or σ(mean R_kept)/σ(R̄) (Algorithm 1).
    model_factor: Literal["mean_sigmoid", "sigmoid_mean"] = "mean_sigmoid"
    # Keep-set weight: unit-variance Gaussian (default) or scaled by the running std (β-DPO).
    keep_weight: Literal["unit", "running_std"] = "unit"
    beta_dpo_alpha: float = Field(0.6, ge=0.0)  # β-DPO's `a`
    # δ̄ pinned by the user; None → the dataset's computed delta_mean from the manifest.
    delta_mean: float | None = None
    # Weight of an added length-normalised NLL of the chosen answers (RPO; TRL's `rpo_alpha`). Not
    # part of DAMA: 0 (the default) is the paper's and the authors' loss. See damo.loss.chosen_nll.
    chosen_nll_weight: float = Field(0.0, ge=0.0)
    # Weight of the preference loss itself. 0 with chosen_nll_weight > 0 is the "SFT on the chosen
    # answers" control of benchmarks/tiny_effect.md, which separates what preference learning adds.
    preference_weight: float = Field(1.0, ge=0.0)
    # Which tokens of a rejected answer its summed log-prob counts, in the reference step and in
    # training alike. "all" is the paper's and the authors' (every response token). "through_fork"
    # counts it only through its first token that differs from the chosen answer: in a minimal-edit
    # pair ("…a blue circle." over "…a red circle.") the words after the fork are right given their
    # prefix, and lowering them pushes probability out of the answer's grammar (measured:
    # benchmarks/tiny_effect.md, "Why longer runs break the grammar"). Not part of DAMA.
    rejected_tokens: Literal["all", "through_fork"] = "all"
    # Conservative DPO's ε (Mitchell 2023; TRL's `label_smoothing`): each pair's loss as if its label
    # were wrong with probability ε. Not part of DAMA; 0 (the default) is the paper's loss. DPO on data
    # with a share ε of labels swapped at random trains, in expectation, this loss on clean data.
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)

    @property
    def objective(self) -> str:
        """What is trained, in words: ``dama``, ``dama + 0.5·nll(chosen)``, ``1·nll(chosen)``,
        ``dama (rejected answers through their fork)``..."""
        terms = []
        if self.preference_weight > 0:
            weight = "" if self.preference_weight == 1 else f"{self.preference_weight:g}·"
            terms.append(f"{weight}{self.arm}")
        if self.chosen_nll_weight > 0:
            terms.append(f"{self.chosen_nll_weight:g}·nll(chosen)")
        tokens = "" if self.rejected_tokens == "all" else " (rejected answers through their fork)"
        smoothing = "" if self.label_smoothing == 0 else f" (label smoothing {self.label_smoothing:g})"
        return " + ".join(terms) + tokens + smoothing

    @model_validator(mode="after")
    def _something_to_train(self) -> LossConfig:
        if self.preference_weight == 0 and self.chosen_nll_weight == 0:
            raise ValueError("preference_weight and chosen_nll_weight are both 0: the loss would be 0")
        return self


class LoraConfig(Section):
    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


class SelectConfig(Section):
    """Which of the run's weights become the model: the last step's (``benchmark`` null, the default),
    or the best candidate on held-out data (:mod:`damo.train.select`).

    Every ``every`` optimizer steps from ``from_step`` on, and at the last step, the weights are saved
    as a candidate model folder. After training each candidate answers ``benchmark``'s prompts from
    ``data`` (with the ``evaluate`` section's decodings) and the candidate with the best ``metric``
    among those reaching every ``floor`` becomes ``out/model``. No candidate at the floor fails the run.
    Each candidate costs a model folder on disk (until the choice: all of them at once) and an
    evaluation on rank 0 after training, once the training engine's memory is freed; on large models
    choose few candidates (a coarse ``every``).
    """

    benchmark: str | None = None
    # The held-out data of `benchmark` (local or s3://, as evaluate.data). Null for tiny_world: the
    # tiny world's own selection images (<pipeline.tiny_world_dir>/selection), never trained on and not
    # the benchmark's. It must not be the data the model is finally evaluated on: that would tune on it.
    data: str | None = None
    every: int = Field(10, ge=1)
    from_step: int = Field(1, ge=1)
    # A flattened key of the evaluate step's metrics.json, e.g. "tiny_world.extra_object_rate".
    metric: str = ""
    mode: Literal["min", "max"] = "min"
    # metric → the least value a candidate must reach (as registry.gate_floor).
    floor: dict[str, float] = Field(default_factory=dict)
    # metric → how far below the *base* model's held-out value a candidate may fall (0: not below it),
    # e.g. a general-quality metric that alignment must not wear down. The base model is evaluated
    # once on the same data; the higher of this and `floor` applies.
    base_floor: dict[str, float] = Field(default_factory=dict)
    # False: after the choice, only the chosen candidate's weights stay (every candidate's answers and
    # metrics do); true keeps them all, e.g. to evaluate them further.
    keep_candidates: bool = False

    @model_validator(mode="after")
    def _check(self) -> SelectConfig:
        if self.benchmark is None:
            return self
        if self.data is None and self.benchmark != "tiny_world":
            raise ValueError(f"train.select.data: give the held-out data of {self.benchmark!r} (local or s3://)")
        for key, drop in self.base_floor.items():
            if not drop >= 0:  # also refuses NaN
                raise ValueError(f"train.select.base_floor[{key!r}]: the allowed drop must be ≥ 0, "
                                 f"got {drop}")
        for key in [self.metric, *self.floor, *self.base_floor]:
            if not key.startswith(self.benchmark):
                raise ValueError(f"train.select: metric {key!r} is not one of benchmark {self.benchmark!r}'s "
                                 f"(its keys start with '{self.benchmark}.' or '{self.benchmark}_')")
        return self


class TrainConfig(Section):
    loss: LossConfig = Field(default_factory=LossConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    epochs: float = Field(4, gt=0)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(5e-7, gt=0)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    global_batch_size: int = Field(16, ge=1)
    micro_batch_size: int = Field(4, ge=1)
    zero_stage: Literal[0, 1, 2, 3] = 3
    num_processes: int = Field(1, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = True
    freeze_vision_tower: bool = True
    shuffle: bool = True  # False reads pairs in file order, as the authors' script does
    reference: Literal["precomputed", "on_the_fly"] = "precomputed"
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(200, ge=1)
    keep_checkpoints: int = Field(2, ge=1)  # older complete checkpoints are deleted
    # Clip to this global gradient norm; null: no clipping, which at one fp32 process with no gradient
    # accumulation lets each parameter's AdamW step run inside the backward (its gradient then freed).
    max_grad_norm: float | None = Field(1.0, gt=0)
    # Response positions that get full-vocabulary logits at once (bounds logits memory).
    logps_chunk_tokens: int = Field(1024, ge=1)
