#!/usr/bin/env bash
# GPU check for the CUDA row cipher (npm run test:gpu). Self-contained: builds the C library and
# the CUDA test driver for sm_90 (override with SECNEURON_CUDA_ARCH=80 ...), then runs it.
# Last line of output: one JSON object. Env: GPU_TEST_MIB (default 1024).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${here}/../build/gpu-test"
mkdir -p "$out"
arch="${SECNEURON_CUDA_ARCH:-90}"
cc="${CC:-cc}"
command -v nvcc >/dev/null || { echo '{"gpu_test":"skip","reason":"nvcc not on PATH"}'; exit 2; }
"$cc" -O3 -std=c11 -D_GNU_SOURCE -fPIC -shared -fvisibility=hidden -pthread \
  "$here/../c/secneuron_c.c" "$here/../c/aes_gcm_portable.c" "$here/../c/aes_gcm_x86.c" -lpthread \
  -o "$out/libsecneuron_c.so"
nvcc -O3 -std=c++17 -cudart static -gencode "arch=compute_${arch},code=sm_${arch}" \
  -I"$here" "$here/test_gpu.cu" "$here/../c/aes_gcm_portable.c" -ldl -o "$out/test_gpu"
if [[ "${GPU_TEST_BUILD_ONLY:-0}" == "1" ]]; then echo '{"gpu_test":"built"}'; exit 0; fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true
"$out/test_gpu" "$out/libsecneuron_c.so" "${GPU_TEST_MIB:-1024}"
