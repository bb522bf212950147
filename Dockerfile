# syntax=docker/dockerfile:1.7
# Two images from one file:
#   docker build -t ghcr.io/damo-ml/damo:0.1.0 .                               (default: the pipeline)
#   docker build --target mlflow-server -t ghcr.io/damo-ml/damo-mlflow:0.1.0 .  (manifests/base/mlflow.yaml)
# Base images are pinned by digest (multi-arch index digests; check with
# `docker buildx imagetools inspect <image>`). After pushing, pin the pipeline image's digest in
# components/image.py and run `python -m pipelines.golden`.

# --------------------------------------------------------------------------- MLflow server
FROM python:3.11-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba AS mlflow-server
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "mlflow[auth]==3.17.2" "boto3>=1.44,<2" "psycopg2-binary>=2.9,<3" \
 && useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin mlflow
USER 1000:1000
WORKDIR /home/mlflow
EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--host=0.0.0.0", "--port=5000"]

# --------------------------------------------------------------------------- NLTK data
# WordNet 3.0 from Debian bookworm's wordnet-base (the same bytes the tests use, checked against
# scripts/wordnet-3.0.sha256) for the official CHAIR/AMBER matching; copied into the pipeline image.
FROM python:3.11-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba AS nltk-data
COPY scripts/install_nltk_data.sh scripts/wordnet-3.0.sha256 /src/scripts/
RUN DAMO_NLTK_DATA=/nltk_data bash /src/scripts/install_nltk_data.sh && rm -rf /var/lib/apt/lists/*
USER 65534:65534

# --------------------------------------------------------------------------- the pipeline image
# CUDA 13.0 devel: matches torch 2.14.1's CUDA build (cu130) so DeepSpeed can compile its ops here.
FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04@sha256:8b2705ea7a8653ad3451b46ab835eced92d77b44e671b9cf3ad4f95fbb2efe5e AS damo
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential ninja-build \
      libaio-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv "$VIRTUAL_ENV" \
 && pip install --upgrade pip

# torch first and alone: the large, rarely changing layer.
RUN pip install "torch==2.14.1" "torchvision==0.29.1"

# DeepSpeed with its training ops compiled now (no GPU is needed to compile; pick the GPU
# architectures of your node pools), so no pod JIT-compiles them at start.
ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0"
RUN TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" DS_BUILD_CPU_ADAM=1 DS_BUILD_FUSED_ADAM=1 DS_BUILD_UTILS=1 \
    pip install --no-build-isolation "deepspeed==0.19.8" \
 && ds_report

# The project: library, components, pipelines, presets (non-editable install).
WORKDIR /opt/damo
COPY pyproject.toml README.md ./
COPY damo ./damo
COPY components ./components
COPY pipelines ./pipelines
COPY configs ./configs
RUN pip install . && python -c "import damo, components, pipelines, kfp; print('damo', damo.__version__)"
COPY --from=nltk-data /nltk_data /opt/damo/nltk_data
ENV DAMO_NLTK_DATA=/opt/damo/nltk_data

# A non-root user. KFP's launcher writes input artifacts under /gcs, /minio and /s3, so those are
# created writable for it; HOME holds pip/HF caches.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin damo \
 && mkdir -p /gcs /minio /s3 /workspace \
 && chown damo:damo /gcs /minio /s3 /workspace
ENV HOME=/home/damo HF_HOME=/home/damo/.cache/huggingface
USER 10001:10001
WORKDIR /home/damo
ENTRYPOINT []
CMD ["damo", "--help"]
