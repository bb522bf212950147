"""The DAMA Kubeflow pipeline: composition only (tasks, artifact edges, resources, node pools).

``build_pipeline(config)`` gives the pipeline function; ``compile_pipeline(config, out)`` writes the
YAML to upload in the Kubeflow UI. The local run (``damo run``) calls the same function under kfp.local.
"""

from pipelines.dama import build_pipeline, compile_pipeline

__all__ = ["build_pipeline", "compile_pipeline"]
