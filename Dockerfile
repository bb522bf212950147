# The pipeline image: every KFP component and every TrainJob node runs it.
#   damo image build [--push REGISTRY] [--base IMAGE] [--ca-bundle FILE]   (prints name@sha256:…)
# `damo image build` assembles the build context itself (this file, the package sources, presets and
# an optional CA bundle), so a plain `docker build .` is not the supported path. The MLflow server's
# image is Dockerfile.mlflow. One stage only: Docker's legacy builder (no buildx) builds every stage
# of a file, so a second stage with an unpullable base would break an offline build.
#
# BASE defaults to today's pinned production base (CUDA 13.0 devel: matches torch 2.14.1's CUDA
# build, cu130, so DeepSpeed can compile its ops here). Any Debian/Ubuntu image with apt works as a
# base, e.g. one made from Debian packages where no registry is reachable (README: "Containers").
ARG BASE=nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04@sha256:8b2705ea7a8653ad3451b46ab835eced92d77b44e671b9cf3ad4f95fbb2efe5e
FROM ${BASE} AS damo
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# A CA bundle for pip behind a TLS-inspecting proxy (`--ca-bundle`); an empty file when not given.
COPY build-ca.crt /opt/damo-build/ca.crt
RUN if [ -s /opt/damo-build/ca.crt ]; then printf "[global]\ncert = /opt/damo-build/ca.crt\n" > /etc/pip.conf; fi \
 && apt-get update \
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

# The project's dependencies, from pyproject.toml alone: a source change does not reinstall them.
WORKDIR /opt/damo
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# The project: library, components, pipelines, presets (non-editable install; `pip check` proves
# the layer above brought every dependency).
COPY damo ./damo
COPY components ./components
COPY pipelines ./pipelines
COPY configs ./configs
RUN pip install --no-deps . && pip check \
 && python -c "import damo, components, pipelines, kfp; print('damo', damo.__version__)"

# NLTK data for the official CHAIR/AMBER matching: the WordNet 3.0 files the tests use, copied by
# `damo image build` from the checkout's verified data folder (scripts/install_nltk_data.sh) and
# checked again here against the same checksums.
COPY nltk_data /opt/damo/nltk_data
RUN cd /opt/damo/nltk_data/corpora/wordnet && sha256sum --quiet -c /opt/damo/nltk_data/wordnet-3.0.sha256
ENV DAMO_NLTK_DATA=/opt/damo/nltk_data

# A non-root user. KFP's launcher writes input artifacts under /gcs, /minio and /s3, so those are
# created writable for it; HOME holds the pip/HF/torch-extension caches. Folders a step writes are
# owned by the user and by group 0 with group rights equal to the user's, so the image also runs
# under an arbitrary uid in group 0 (OpenShift's restricted policy; `damo run --runner docker` runs
# containers as the host user in group 0 so that the outputs in its pipeline root stay the host's).
ENV HOME=/home/damo HF_HOME=/home/damo/.cache/huggingface \
    TORCH_EXTENSIONS_DIR=/home/damo/.cache/torch_extensions MPLCONFIGDIR=/home/damo/.cache/matplotlib
RUN useradd --uid 10001 --gid 0 --create-home --shell /usr/sbin/nologin damo \
 && mkdir -p /gcs /minio /s3 /workspace "$HF_HOME" "$TORCH_EXTENSIONS_DIR" "$MPLCONFIGDIR" \
 && chown -R 10001:0 /gcs /minio /s3 /workspace /home/damo \
 && chmod -R g=u /gcs /minio /s3 /workspace /home/damo
USER 10001:0
WORKDIR /home/damo
ENTRYPOINT []
CMD ["damo", "--help"]
