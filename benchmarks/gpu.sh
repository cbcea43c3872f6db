#!/usr/bin/env bash
# benchmarks/gpu.py as one command on a GPU machine, from this checkout without installing it:
# wheels in ./.whl (for a machine without network: pydantic, zarr and their dependencies
# where its Python lacks them) are unpacked first, then the GPU is named and measured.
#   bash benchmarks/gpu.sh [--minutes 8] [--cpu-smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/utom-site .whl/*.whl
    export PYTHONPATH=/tmp/utom-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader
python3 benchmarks/gpu.py "$@"
