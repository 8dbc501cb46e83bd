#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md, for a GPU machine without TensorFlow or
# network (PyTorch, JAX and Pillow installed; Keras and airbench as wheels):
#   - the head ratio (ArcMarginLayer over a Dense head) on JAX and on PyTorch;
#   - airbench94 as published (its half precision) on the CIFAR-10 copy, 2 seeds
#     at its 9.9 epochs and one at 20, with the epoch at which it first reaches 94 %.
# Prepared where the data and the registry are (the copy packed as JPEG, 56 MB):
#   pip download --no-deps -d .whl keras==3.15.1 namex optree   # cp312 manylinux wheels
#   pip wheel --no-deps -w .whl airbench==0.1.8
#   python scripts/jpeg_pack.py pack ../shared/data/cifar10.npz .gpudata/cifar10-q75.npz
# Run there from the repository root with OUT set to where the results go.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, jax; print('torch', torch.__version__, 'jax', jax.__version__)"
  for backend in jax torch; do
    KERAS_BACKEND=$backend python3 scripts/benchmark_head_backends.py --output "$OUT/head-$backend"
  done
  python3 scripts/jpeg_pack.py unpack .gpudata/cifar10-q75.npz /tmp/cifar10.npz
  for run in "0 9.9" "1 9.9" "0 20"; do
    set -- $run
    KERAS_BACKEND=torch python3 scripts/reference_airbench.py --data /tmp/cifar10.npz --device cuda \
      --seed "$1" --epochs "$2" --output "/tmp/airbench-gpu-seed$1-$2ep" && cp "/tmp/airbench-gpu-seed$1-$2ep.json" "$OUT/"
  done
} 2>&1 | tee "$OUT/log.txt"
