#!/bin/bash
# One step of a GPU session, run from the repository root on the device machine (see bench/RESULTS.md, "How").
#   bash bench/device.sh wheels|bundle1|bundle2      then the python -m bench... commands
# Sets nothing for the caller: source it (". bench/device.sh env") to get PYTHONPATH and vLLM's variables.
export PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONPATH=/tmp/site:$PWD TOKENIZERS_PARALLELISM=false
case "$1" in
  wheels) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
          nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
          python3 -c "import torch, transformers, av; print('torch', torch.__version__, 'transformers', transformers.__version__, 'av', av.__version__, 'cpus', __import__('os').cpu_count())" ;;
  bundle1) sh .gpu-bundle/1/install-on-device.sh ;;
  bundle2) sh .gpu-bundle/2/install-on-device.sh ;;
  env) ;;
esac
