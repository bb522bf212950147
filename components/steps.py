"""One KFP v2 lightweight component per pipeline step.

Each body only maps artifacts to the step's paths, builds the config from the YAML text it gets and
calls ``damo.steps.<step>.run`` — the same function the CLI calls. Imports sit inside the bodies
because KFP ships each function's source alone into its container. ``install_kfp_package=False``:
the image has kfp installed with damo (and a local run uses the current environment).

The image is configuration (``pipeline.image``), not source: components are declared with an
unpullable placeholder and :func:`with_image` gives the copy a pipeline uses.
"""

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

# Never pulled: build_pipeline binds every task to config.pipeline.image (with_image).
UNBOUND_IMAGE = "damo-image-unset.invalid/set-pipeline-image"


def component(func: Callable[..., Any]) -> Any:
    """Every damo component: no pip install at start; the image is bound per pipeline."""
    return dsl.component(func, base_image=UNBOUND_IMAGE, install_kfp_package=False)


def with_image(comp: Any, image: str) -> Any:
    """A copy of component ``comp`` that runs in ``image``."""
    bound = copy.deepcopy(comp)
    bound.component_spec.implementation.container.image = image
    return bound


@component
# KFP ships a component's source alone, so its NamedTuple output is spelled inline (KFP's documented
# form), which mypy cannot read as a type.
def tiny_world(config: str, world_dir: str) -> NamedTuple(  # type: ignore[valid-type]
        "World", [("data", str), ("policy", str)]):
    """The offline tiny world in ``world_dir`` (built if missing): the local run's embedded default."""
    from pathlib import Path

    from damo.steps.local_run import ensure_tiny_world
    from damo.steps.pipeline_io import config_from_yaml

    world = ensure_tiny_world(config_from_yaml(config), Path(world_dir))
    return (str(world / "data"), str(world / "policy"))


@component
def ingest(config: str, source: str, dataset: Output[Dataset]) -> str:
    from pathlib import Path

    from damo.steps import ingest as step
    from damo.steps.pipeline_io import config_from_yaml, result_json

    paths = step.IngestPaths(source=source, out=Path(dataset.path))
    return result_json(step.run(config_from_yaml(config), paths))


@component
def score(config: str, dataset: Input[Dataset], scored: Output[Dataset]) -> str:
    from pathlib import Path

    from damo.steps import score as step
    from damo.steps.pipeline_io import config_from_yaml, result_json

    paths = step.ScorePaths(data=Path(dataset.path), out=Path(scored.path))
    return result_json(step.run(config_from_yaml(config), paths))


@component
def reference(config: str, dataset: Input[Dataset], base_model: str, referenced: Output[Dataset]) -> str:
    from pathlib import Path

    from damo.steps import reference as step
    from damo.steps.pipeline_io import config_from_yaml, result_json

    paths = step.ReferencePaths(data=Path(dataset.path), model=base_model, out=Path(referenced.path))
    return result_json(step.run(config_from_yaml(config), paths))


@component
def configure(config: str, arm: str, beta: float, epochs: float, gpus: int, model_name: str,
              gate: dict, gpu_node_selector: dict, gpu_tolerations: list) -> str:
    """The config with the run's UI parameters applied (validated here, before any GPU starts)."""
    from damo.steps.pipeline_io import apply_run_parameters

    return apply_run_parameters(config, {
        "arm": arm, "beta": beta, "epochs": epochs, "gpus": gpus, "model_name": model_name, "gate": gate,
        "gpu_node_selector": gpu_node_selector, "gpu_tolerations": gpu_tolerations})


@component
def train(config: str, dataset: Input[Dataset], base_model: str, trained: Output[Model]) -> str:
    from pathlib import Path

    from damo.steps import train as step
    from damo.steps.pipeline_io import config_from_yaml, result_json

    paths = step.TrainPaths(data=Path(dataset.path), model=base_model, out=Path(trained.path))
    return result_json(step.run(config_from_yaml(config), paths))


@component
def train_multinode(config: str, dataset: Input[Dataset], base_model: str, trained: Output[Model]) -> str:
    """The train step as a Kubeflow Trainer TrainJob (``pipeline.num_nodes`` nodes) running `damo train`."""
    from pathlib import Path

    from damo.cluster import trainjob
    from damo.steps.pipeline_io import config_from_yaml, result_json

    run_config = config_from_yaml(config)
    if not run_config.pipeline.image:  # build_pipeline always sets it; a hand-made config may not
        raise ValueError("pipeline.image is unset: the TrainJob nodes need the pipeline's image")
    paths = trainjob.TrainJobPaths(data=Path(dataset.path), model=base_model, out=Path(trained.path),
                                   image=run_config.pipeline.image)
    return result_json(trainjob.run(run_config, paths))


@component
def evaluate(config: str, trained: Input[Model], base_model: str, evaluation: Output[Artifact],
             report: Output[Markdown], metrics: Output[Metrics]) -> str:
    """Aligned model against the base model; the report and key metrics also go to the KFP UI."""
    import shutil
    from pathlib import Path

    from damo.flat import numbers
    from damo.steps import evaluate as step
    from damo.steps.pipeline_io import config_from_yaml, result_json

    out = Path(evaluation.path)
    result = step.run(config_from_yaml(config), step.EvaluatePaths(
        out=out, model=str(Path(trained.path) / "model"), baseline=base_model))
    shutil.copyfile(out / "report.md", report.path)
    for name, value in numbers(result).items():
        metrics.log_metric(name, value)
    return result_json(result)


@component
def register(config: str, trained: Input[Model], evaluation: Input[Artifact], dataset: Input[Dataset],
             registration: Output[Artifact]) -> str:
    from pathlib import Path

    from damo.steps import register as step
    from damo.steps.pipeline_io import config_from_yaml, result_json

    paths = step.RegisterPaths(model=Path(trained.path) / "model",
                               metrics=Path(evaluation.path) / "metrics.json", data=Path(dataset.path),
                               out=Path(registration.path))
    return result_json(step.run(config_from_yaml(config), paths))
