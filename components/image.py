"""The one place that names the container image every component (and every TrainJob node) runs.

The image is built from the repository's ``Dockerfile`` and pinned by digest, so that a compiled
pipeline always runs exactly the code it was compiled with. After pushing a new image, replace
``DIGEST`` with the digest the registry reports (``docker buildx imagetools inspect``) and
regenerate the golden pipeline (``python -m pipelines.golden``).
"""

from __future__ import annotations

NAME = "ghcr.io/damo-ml/damo"
TAG = "0.1.0"
# Not yet published from this repository: an all-zero digest fails to pull loudly on a cluster
# rather than running an unknown image.
DIGEST = "sha256:" + "0" * 64

IMAGE = f"{NAME}:{TAG}@{DIGEST}"
