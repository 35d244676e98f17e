#!/usr/bin/env bash
# The checks for a machine with a CUDA GPU, in one run of at most 7.5 minutes:
#   1. the CUDA tests: pytest -m "not slow and not integration" -k cuda selects 13 tests now:
#      the 11 that need a GPU (tests/test_blockwise.py, tests/test_codec.py: CUDA results equal
#      the CPU's) and 2 that only name cuda in an error message; any skip is a failure here;
#   2. benchmarks/gpu_client.py --json "$OUT/gpu_client.json" (at most 5 minutes).
# Run from the repository root: bash benchmarks/gpu_check.sh
# Output: everything in "$OUT/gpu_check.log" ($OUT defaults to runs/gpu-check).
# Exit status: 0 when all passed, 2 when CUDA is not usable, otherwise the failing step's.
#
# Setup: a CUDA build of PyTorch must already be installed for the Python that runs this
# (`make setup` would install the CPU build into a fresh .venv). Without .venv the script
# creates it on top of that Python and installs fedland (the package index must be
# reachable):
#     python3 -m venv --system-site-packages .venv && .venv/bin/pip install -e ".[dev]"
# PYTHON=/path/to/python picks another interpreter for that.

set -uo pipefail

SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SCRIPT")/.."
OUT="${OUT:-runs/gpu-check}"
mkdir -p "$OUT"
LIMIT=450 # seconds for everything, setup included

if [ -z "${GPU_CHECK_INNER:-}" ]; then
    GPU_CHECK_INNER=1 timeout --kill-after=10 "$LIMIT" bash "$SCRIPT" 2>&1 | tee "$OUT/gpu_check.log"
    status=${PIPESTATUS[0]}
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "gpu_check: stopped after the $LIMIT s limit" | tee -a "$OUT/gpu_check.log"
    fi
    exit "$status"
fi

DEADLINE=$((LIMIT - 15)) # the inner steps leave time for the summary

if [ ! -x .venv/bin/python ]; then
    base="${PYTHON:-python3}"
    # Without a CUDA torch underneath, pip would fetch a torch build of its own choosing.
    "$base" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null || {
        echo "gpu_check: no .venv, and $base has no CUDA build of torch (see the header)"
        exit 2
    }
    echo "gpu_check: creating .venv on $("$base" --version 2>&1)"
    "$base" -m venv --system-site-packages .venv &&
        .venv/bin/pip install --quiet -e ".[dev]" ||
        { echo "gpu_check: could not create .venv (see the header)"; exit 2; }
fi

if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
    echo "gpu_check: nvidia-smi not found"
fi
.venv/bin/python - <<'EOF' || exit 2
import sys

import torch

print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}")
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device; install a CUDA build of PyTorch "
             "(see the header of benchmarks/gpu_check.sh)")
print(f"device: {torch.cuda.get_device_name()}")
EOF

echo
echo "== CUDA tests"
timeout --kill-after=5 120 .venv/bin/python -m pytest -q -p no:cacheprovider \
    -m "not slow and not integration" -k cuda -rs 2>&1 | tee "$OUT/cuda_tests.log"
tests=${PIPESTATUS[0]}
if grep -q "skipped" "$OUT/cuda_tests.log"; then
    echo "gpu_check: CUDA tests were skipped"
    tests=1
fi

echo
echo "== benchmarks/gpu_client.py"
left=$((DEADLINE - SECONDS))
budget=$((left < 300 ? left : 300))
if [ "$budget" -lt 60 ]; then
    echo "gpu_check: only $left s left, not enough for gpu_client"
    client=1
else
    timeout --kill-after=5 "$budget" .venv/bin/python benchmarks/gpu_client.py \
        --json "$OUT/gpu_client.json" --time-limit $((budget - 90 > 0 ? budget - 90 : 0))
    client=$?
fi

echo
echo "gpu_check: CUDA tests exit $tests, gpu_client exit $client, $SECONDS s"
[ "$tests" -eq 0 ] || exit "$tests"
exit "$client"
