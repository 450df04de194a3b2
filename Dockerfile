# One image, both front ends: APP_MODE=webui serves the Gradio app on port 7860, APP_MODE=runpod runs the RunPod
# serverless worker. Models are baked in at build time, so a cold start never downloads weights.
#
#   docker build -t qwen3-asr .                                         # Qwen3-ASR-0.6B + ForcedAligner-0.6B
#   docker build -t qwen3-asr:1.7b --build-arg ASR_MODEL=Qwen/Qwen3-ASR-1.7B .
#   docker run --gpus all -p 7860:7860 qwen3-asr                        # web app
#   docker run --gpus all -e APP_MODE=runpod qwen3-asr                  # worker (RunPod sets the rest)
#
# CUDA 13.0: the torch 2.11.0 and vllm 0.26.0 wheels on PyPI are built for CUDA 13.0 (torch pins
# cuda-toolkit 13.0.2), so the host driver must be >= 580. The wheels bring their own CUDA libraries; the base
# image supplies the driver-facing runtime and a matching CUDA_VERSION for the container toolkit's checks.
FROM nvidia/cuda:13.0.2-runtime-ubuntu24.04

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# python3.12 is Ubuntu 24.04's own Python. gcc + python3-dev: Triton (under vLLM and torch.compile) compiles small
# C launchers at run time. No ffmpeg: PyAV's wheel carries its own FFmpeg libraries.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# RUNPOD_MIN_CUDA_VERSION: the SDK's start-up fitness check on RunPod refuses a host whose driver is older than the
# CUDA the wheels need, with a clear log line instead of a failed model load.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/opt/hf \
    HF_HUB_DISABLE_TELEMETRY=1 \
    RUNPOD_MIN_CUDA_VERSION=13.0

# The unprivileged user the container runs as (created now so the model cache can be handed to it below); uid 1000
# is taken by Ubuntu 24.04's own `ubuntu` user.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change, not on every code edit.
COPY requirements-gpu.txt ./
RUN pip install -r requirements-gpu.txt

# Weights next (a few GB), keyed on the model build args: a code change does not download them again.
ARG ASR_MODEL=Qwen/Qwen3-ASR-0.6B
ARG ALIGNER_MODEL=Qwen/Qwen3-ForcedAligner-0.6B
ARG DIARIZER_MODEL=microsoft/wavlm-base-plus-sv
ENV ASR_MODEL=${ASR_MODEL} \
    ALIGNER_MODEL=${ALIGNER_MODEL} \
    DIARIZER_MODEL=${DIARIZER_MODEL}
COPY builder/fetch_models.py builder/
# chown in the same layer: a separate RUN would copy every weight file into a second layer.
RUN python builder/fetch_models.py && chown -R app:app /opt/hf

COPY . .

# The RunPod SDK keeps its job-state file in the working directory, and vLLM, Triton and Gradio write caches under
# $HOME, so both are the user's home; the code stays root-owned and read-only in /app.
USER 10001:10001
WORKDIR /home/app

ARG APP_MODE=webui
ENV APP_MODE=${APP_MODE} \
    PYTHONPATH=/app \
    HF_HUB_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860

EXPOSE 7860
CMD ["python", "/app/app.py"]
