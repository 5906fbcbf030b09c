#!/usr/bin/env bash
# The GPU check, in one command for a lent GPU machine (about 6 minutes): the GPU tests,
# then the GPU benchmark, every output written under $OUT as it goes (so a run cut short
# still returns what it did). Run from the repository root.
#
# The machine's image has numpy, scipy, numba, cupy, msgpack, scikit-learn and pytest but
# no pyzmq and no network, so pyzmq travels as a wheel in .whl/ (download it here first):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 -d .whl pyzmq
#
# smpframe itself runs from the checkout (PYTHONPATH), which is what the workers inherit.
set -uo pipefail
out="${OUT:-bench-out/gpu}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
python3 -c "import cupy, zmq, numba; print('cupy', cupy.__version__, 'zmq', zmq.__version__,
'numba', numba.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" 2>&1 | tee "$out/versions.txt"
# the gpu-marked tests, and the LDA kernel against the CPU one on the real device
timeout 200 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" tests 2>&1 \
  | tee "$out/pytest-gpu.log"
# CPU-only, GPU-only and CPU + GPU K-Means throughput
timeout 240 python3 benchmarks/bench_gpu.py --out "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.log"
