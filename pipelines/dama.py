"""The DAMA pipeline: ingest → score → reference → train → evaluate → register.

Composition only. The run's UI parameters (data source, base model, arm, β, epochs, GPUs per node,
model name, promotion gate, GPU node selector and tolerations) default to the config's values; the
full config travels as one line of JSON text (``config``), so a person can edit any other field.
Cluster settings (resources, secrets, caching, retries, /dev/shm, and ``num_nodes`` > 1 for a
multi-node TrainJob) come from ``config.pipeline`` at compile time;
Hub settings (``hub.token_secret`` as ``HF_TOKEN``, ``hub.endpoint``/``hub.offline`` as ``HF_ENDPOINT``/
``HF_HUB_OFFLINE``) go to the tasks that read models.

Pod security: every task runs as ``pipeline.run_as_user``/``run_as_group`` with ``runAsNonRoot``
(``kubernetes.set_security_context``, the only container security fields the KFP platform spec of
kfp-kubernetes 2.17 can express). The rest of the restricted standard — ``allowPrivilegeEscalation:
false``, ``capabilities.drop: [ALL]``, seccomp ``RuntimeDefault`` — the KFP backend's compiler and driver
set on every executor container themselves (kubeflow/pipelines#12782, #12832); the namespace
(``manifests/base/namespace.yaml``) enforces ``restricted``, so a backend that did not would be refused.
kfp.local ignores them, so the local run executes exactly this graph.
"""

from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from kfp import compiler, dsl, kubernetes

from components import steps
from damo.config import ConfigError, DamoConfig, HubConfig, PipelineConfig
from damo.contract import HF_SECRET_KEYS, MLFLOW_SECRET_KEYS, S3_SECRET_KEYS
from damo.steps.pipeline_io import config_text, run_parameter_defaults

SHM_VOLUME = "dshm"
MODEL_STEPS = ("score", "reference", "train", "evaluate")  # the tasks that read a model or a CLIP
(HF_TOKEN_KEY,) = HF_SECRET_KEYS


def _secure(task: dsl.PipelineTask, p: PipelineConfig) -> None:
    """Non-root identity for the task's container (restricted Pod Security; see the module doc)."""
    kubernetes.set_security_context(task, run_as_user=p.run_as_user, run_as_group=p.run_as_group,
                                    run_as_non_root=True)


def _hub_access(task: dsl.PipelineTask, step: str, hub: HubConfig) -> None:
    """The Hub token (from its Secret), endpoint and offline mode for the tasks that read models."""
    if step not in MODEL_STEPS:
        return
    if hub.token_secret is not None:
        kubernetes.use_secret_as_env(task, hub.token_secret, {HF_TOKEN_KEY: HF_TOKEN_KEY})
    if hub.endpoint is not None:
        task.set_env_variable("HF_ENDPOINT", hub.endpoint)
    if hub.offline:
        task.set_env_variable("HF_HUB_OFFLINE", "1")
COMPONENTS = ("tiny_world", "ingest", "score", "reference", "configure", "train", "train_multinode",
              "evaluate", "register")


class Outputs(NamedTuple):
    """What a run returns: the register and evaluate steps' results (JSON text)."""

    registered: str
    evaluated: str


def _place(task: dsl.PipelineTask, step: str, p: PipelineConfig, *, gpus: Any = None,
           node_selector: Any = None, tolerations: Any = None,
           hub: HubConfig | None = None) -> dsl.PipelineTask:
    """Resources, secrets, caching, retries and pod security of one task; GPU tasks go to the GPU pool."""
    res = p.resources[step]
    task.set_display_name(step)
    _secure(task, p)
    _hub_access(task, step, hub or HubConfig())
    task.set_cpu_request(res.cpu).set_memory_request(res.memory).set_memory_limit(res.memory)
    task.set_caching_options(step in p.cache_steps)
    if p.retries:
        task.set_retry(num_retries=p.retries, backoff_duration=p.retry_backoff)
    if step != "configure":  # least privilege: configure only validates text
        kubernetes.use_secret_as_env(task, p.s3_secret, {k: k for k in S3_SECRET_KEYS})
        kubernetes.use_secret_as_env(task, p.mlflow_secret, {k: k for k in MLFLOW_SECRET_KEYS})
    gpu_count = gpus if gpus is not None else (res.gpus or None)
    if gpu_count is not None:
        task.set_accelerator_type(p.gpu_resource).set_accelerator_limit(gpu_count)
        kubernetes.add_node_selector_json(task, node_selector)
        kubernetes.add_toleration_json(task, tolerations)
        # NCCL and DataLoader workers use /dev/shm; the container default (64 MiB) is too small.
        kubernetes.empty_dir_mount(task, volume_name=SHM_VOLUME, mount_path="/dev/shm", medium="Memory",
                                   size_limit=p.shm_size)
    return task


def bound_components(p: PipelineConfig) -> SimpleNamespace:
    """Every component, running in ``pipeline.image`` (resolved and checked by the caller:
    damo.container.reference.with_image)."""
    if not p.image:
        raise ConfigError("pipeline.image is unset: resolve the image before building the pipeline "
                          "(damo.container.reference.with_image)")
    return SimpleNamespace(**{name: steps.with_image(getattr(steps, name), p.image) for name in COMPONENTS})


def build_pipeline(config: DamoConfig) -> Any:
    """The pipeline function, its parameters defaulting to ``config``'s values."""
    p = config.pipeline
    c = bound_components(p)
    ui = run_parameter_defaults(config)
    hub = config.hub
    defaults: dict[str, Any] = {
        "config": config_text(config), "source": p.source or "", "base_model": p.base_model or "", **ui}

    @dsl.pipeline(name=p.name, description="DAMA alignment of a multimodal LLM: data → model version",
                  pipeline_root=p.pipeline_root)
    def dama(config: str = defaults["config"], source: str = defaults["source"],
             base_model: str = defaults["base_model"], arm: str = defaults["arm"],
             beta: float = defaults["beta"], epochs: float = defaults["epochs"],
             gpus: int = defaults["gpus"],
             model_name: str = defaults["model_name"], gate: dict = defaults["gate"],
             gpu_node_selector: dict = defaults["gpu_node_selector"],
             gpu_tolerations: list = defaults["gpu_tolerations"]) -> Outputs:
        pool: dict[str, Any] = {"node_selector": gpu_node_selector, "tolerations": gpu_tolerations,
                                "hub": hub}
        gpu_pool = {"gpu_node_selector": gpu_node_selector, "gpu_tolerations": gpu_tolerations}
        ing = _place(c.ingest(config=config, source=source), "ingest", p)
        sc = _place(c.score(config=config, dataset=ing.outputs["dataset"]), "score", p, **pool)
        ref = _place(c.reference(config=config, dataset=sc.outputs["scored"], base_model=base_model),
                     "reference", p, **pool)
        run_config = _place(c.configure(config=config, arm=arm, beta=beta, epochs=epochs, gpus=gpus,
                                            model_name=model_name, gate=gate, **gpu_pool),
                            "configure", p).output
        data = ref.outputs["referenced"]
        if p.num_nodes > 1:  # a compile-time layout choice: kfp.local runs no dsl.OneOf
            tr = _place(c.train_multinode(config=run_config, dataset=data, base_model=base_model),
                        "train", p, hub=hub)
            kubernetes.mount_pvc(tr, pvc_name=p.trainjob.workspace_pvc, mount_path=p.trainjob.workspace_path)
        else:
            tr = _place(c.train(config=run_config, dataset=data, base_model=base_model), "train", p,
                        gpus=gpus, **pool)
        trained = tr.outputs["trained"]
        ev = _place(c.evaluate(config=run_config, trained=trained, base_model=base_model),
                    "evaluate", p, **pool)
        reg = _place(c.register(config=run_config, trained=trained, evaluation=ev.outputs["evaluation"],
                                    dataset=data), "register", p)
        return Outputs(registered=reg.outputs["Output"], evaluated=ev.outputs["Output"])

    return dama


def compile_pipeline(config: DamoConfig, out: str | Path) -> Path:
    """Compile the pipeline for ``config`` to a YAML file (upload it in the Kubeflow UI)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), str(out))
    return out
