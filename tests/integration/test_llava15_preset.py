"""The ``llava15_7b`` preset's own path on CPU, with only sizes changed: ingest (RLAIF-V parquet) →
score → reference → train → evaluate → register (real MLflow + SeaweedFS), the base model named by the
preset's Hub id and read offline from a hub cache laid out as the hub client lays it out.

What runs as the preset sets it: the base model id ``llava-hf/llava-1.5-7b-hf`` (resolved to a commit),
LLaVA-1.5's architecture, chat template and image layout (336 px / 14 px → 576 image tokens, feature
layer −2), bf16 reference and training (this CPU has native bf16; elsewhere it is emulated), gradient
checkpointing, ZeRO-3 over 2 processes (its optimizer-state checkpoint and its 16-bit weight gather at
save), the cosine schedule with warmup, the DAMA arm with CLIP hardness, Object HalBench with 3-beam
decoding on images. What the sizes change: model widths and vocabulary (llava15_tiny.py), a tiny CLIP
from the hub (``hf-hub:``) instead of ViT-L-14-336/openai, 8 pairs, 2 optimizer steps, micro-batch 1,
8 new tokens, 4 benchmark images; the generative benchmarks needing data that cannot be shipped here
(AMBER, POPE images; MMHal's judge) are left to their own tests. Not exercised here: fp16 and NCCL on
GPUs, and more than one node (the TrainJob's manifest is tested in tests/unit/cluster).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from damo import stack as damo_stack
from damo.config import DamoConfig, load_config
from damo.models import load_policy, resolve_model
from damo.steps.evaluate import EvaluatePaths
from damo.steps.evaluate import run as evaluate
from damo.steps.ingest import IngestPaths
from damo.steps.ingest import run as ingest
from damo.steps.reference import ReferencePaths
from damo.steps.reference import run as reference
from damo.steps.register import RegisterPaths
from damo.steps.register import run as register
from damo.steps.score import ScorePaths
from damo.steps.score import run as score
from damo.steps.train import TrainPaths
from damo.steps.train import run as train
from damo.train.engine import lr_lambda
from tests.integration.llava15_tiny import FEATURE_LAYER, IMAGE_TOKENS, build_llava15_tiny
from tests.unit.eval.evalfiles import coco_annotations, coco_synonyms, png, write_jsonl
from tests.unit.hardness.conftest import make_clip_folder
from tests.unit.hub.layout import save_in_hub_cache
from tests.unit.ingest.conftest import rlaif_rows, write_parquet

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIP_REPO = "damo-test/tiny-clip"


def sizes(cache: Path, bench: list[str]) -> list[str]:
    return [f"hub.cache_dir={cache}", "hub.offline=true",
            f"score.clip_model=hf-hub:{CLIP_REPO}", "score.clip_pretrained=null", "score.num_workers=0",
            "reference.batch_size=2",
            "train.max_steps=2", "train.global_batch_size=4", "train.micro_batch_size=1",
            "train.num_processes=2",
            "evaluate.benchmarks=[object_halbench]", "evaluate.max_new_tokens=8", "evaluate.batch_size=2",
            *bench]


def object_halbench(root: Path) -> list[str]:
    coco = coco_annotations(root / "coco", instances={101: [18], 102: [70], 103: [22], 104: [1]},
                            captions={101: ["A dog."], 102: ["A toilet."], 103: ["An elephant."],
                                      104: ["A man."]}, train_captions={})
    rows = [{"image_id": i, "question": "Describe this image in detail.",
             "image": base64.b64encode(png(colour, 48)).decode()}
            for i, colour in zip((101, 102, 103, 104), ("red", "green", "blue", "white"), strict=True)]
    bench = write_jsonl(root / "obj_halbench_300_with_image.jsonl", rows)
    return [f"evaluate.data.object_halbench={bench}", f"evaluate.data.coco_annotations={coco}",
            f"evaluate.data.coco_synonyms={coco_synonyms(root)}"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> tuple[DamoConfig, dict[str, str], Path]:
    root = tmp_path_factory.mktemp("llava15")
    cache = root / "hub-cache"
    config = load_config("llava15_7b", sizes(cache, object_halbench(root)))
    base = str(config.pipeline.base_model)
    commits = {"base": save_in_hub_cache(build_llava15_tiny(root / "llava"), cache, base),
               "clip": save_in_hub_cache(make_clip_folder(root / "clip"), cache, CLIP_REPO)}
    return config, commits, root


def run_path(config: DamoConfig, root: Path) -> dict[str, Any]:
    base = str(config.pipeline.base_model)
    source = write_parquet(root / "rlaif-v" / "RLAIF-V-Dataset_000.parquet", rlaif_rows(8))
    results = {"ingest": ingest(config, IngestPaths(source=str(source.parent), out=root / "dataset"))}
    results["score"] = score(config, ScorePaths(root / "dataset", root / "scored"))
    results["reference"] = reference(config, ReferencePaths(root / "scored", base, root / "referenced"))
    results["train"] = train(config, TrainPaths(root / "referenced", base, root / "trained"))
    trained = str(root / "trained" / "model")
    evaluation = EvaluatePaths(out=root / "evaluation", model=trained, baseline=base)
    results["evaluate"] = evaluate(config, evaluation)
    results["register"] = register(config, RegisterPaths(model=root / "trained", data=root / "referenced",
                                                         metrics=root / "evaluation" / "metrics.json",
                                                         out=root / "registered"))
    return results


def test_preset_path_runs_on_cpu_with_only_sizes_changed(preset, stack_environ: damo_stack.StackEnv) -> None:
    config, commits, root = preset
    t = config.train
    # the preset's own settings, untouched by the size overrides
    assert (t.zero_stage, t.precision, t.gradient_checkpointing, t.lr_schedule) == (3, "bf16", True, "cosine")
    assert t.warmup_ratio > 0 and t.loss.arm == "dama" and config.reference.precision == "bf16"
    assert [d.num_beams for d in config.evaluate.decoding["object_halbench"]] == [3]
    results = run_path(config, root)
    assert results["ingest"]["kept"] == 8 and results["ingest"]["quarantined"] == 0
    manifest = json.loads((root / "scored" / "manifest.json").read_text())
    assert manifest["statistics"]["delta_mean"]["provenance"]["hub_commit"] == commits["clip"]
    assert results["reference"]["hub_commit"] == commits["base"]
    assert results["reference"]["hub_repo"] == config.pipeline.base_model

    trained = results["train"]
    assert trained["world_size"] == 2 and trained["base_model"]["hub_commit"] == commits["base"]
    assert f"Hub commit {commits['base']}" in (root / "trained" / "model" / "README.md").read_text()
    history = json.loads((root / "trained" / "metrics.json").read_text())["history"]
    factor = lr_lambda(t, trained["steps"])
    assert [h["lr"] for h in history] == pytest.approx([t.learning_rate * factor(s) for s in
                                                        range(1, trained["steps"] + 1)])
    assert (root / "trained" / "checkpoints").is_dir()  # the ZeRO-3 engine checkpoint

    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(root / "trained" / "model")
    assert model.config.image_seq_length == IMAGE_TOKENS
    assert model.config.vision_feature_layer == FEATURE_LAYER
    assert model.config.dtype == torch.bfloat16  # the bf16 weights gathered from the ZeRO-3 shards
    processor = AutoProcessor.from_pretrained(root / "trained" / "model")
    assert processor.image_processor.crop_size == {"height": 336, "width": 336}

    evaluated = results["evaluate"]
    assert evaluated["evaluated"]["baseline"]["hub_commit"] == commits["base"]
    metrics = json.loads((root / "evaluation" / "metrics.json").read_text())
    assert metrics["object_halbench"]["decoding"]["num_beams"] == 3
    answers = (root / "evaluation" / "answers.object_halbench.beam3.jsonl").read_text().splitlines()
    assert len(answers) == 4
    assert (root / "evaluation" / "baseline" / "answers.object_halbench.beam3.jsonl").is_file()

    registered = results["register"]
    assert registered["name"] == config.registry.model_name == "llava-1.5-7b-dama"
    # The preset's gate reads object_halbench.chair_response; an untrained tiny model names no COCO
    # object, so the ratio is undefined (None, never 0) and the gate refuses to promote.
    halbench = metrics["object_halbench"]
    assert halbench["mentions"] == 0 and halbench["chair_response"] is None
    assert registered["aliases"] == ["candidate"]
    assert registered["gate"] == ("candidate lacks gate metrics "
                                  "['llava_bench.relative_score', 'object_halbench.chair_response']")


def test_the_policy_loads_as_the_preset_asks(preset) -> None:
    """bf16 weights, the vision tower frozen and gradient checkpointing on (the train step's loader)."""
    config, _, _ = preset
    t = config.train
    folder = resolve_model(str(config.pipeline.base_model), config)
    policy = load_policy(folder, t.precision, freeze_vision_tower=t.freeze_vision_tower, lora=t.lora,
                         gradient_checkpointing=t.gradient_checkpointing)
    assert policy.is_activation_checkpointing and policy.dtype == torch.bfloat16
    tower = policy.model.vision_tower
    assert not any(p.requires_grad for p in tower.parameters())
    assert all(p.requires_grad for p in policy.model.language_model.parameters())
