#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py says what it runs): on one H100/H200-class card,
# within 10 minutes, JSON records of cifar10-94 (3 seeds), airbench94 beside it (with
# --airbench), bench_pool's CUDA rows and NIN's Table 5 schedule for as many heads as fit.
#
#   bash benchmarks/gpu_check.sh --dry-run                 # toy sizes on the CPU (CI)
#   bash benchmarks/gpu_check.sh --data .gpu-data --records "$OUT"
#
# It uses the python that holds torch there (PYTHON, default python3), installs wheels
# carried in .whl/ if there are any (the card's machine reaches no registry), and runs
# globalpool from this checkout's src/ when it is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu-check-site .whl/*.whl
  export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import globalpool" 2>/dev/null; then
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu_check.py "$@"
