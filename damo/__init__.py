"""damo: DAMA alignment of multimodal LLMs, as a Kubeflow Pipelines workflow with MLflow and S3.

The library never imports kfp: the pipeline and components live in the top-level ``pipelines`` and
``components`` packages, which the CLI's cluster verbs import inside the command.
"""

__version__ = "0.1.0"
