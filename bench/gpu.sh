#!/usr/bin/env bash
# Every GPU benchmark and the gpu-marked tests on one CUDA device (about 5 minutes on an H100/H200-class GPU):
# writes the 'gpu' section of BENCHMARKS.md with the GPU's name. `bench/gpu.sh --check` composes every config and
# runs one tiny step of each benchmark on the CPU (no GPU needed, nothing written; `make test` runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ "${1:-}" == "--check" ]]; then
    exec "$PYTHON" bench/gpu.py --check
fi
"$PYTHON" bench/gpu.py "$@"
"$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/
