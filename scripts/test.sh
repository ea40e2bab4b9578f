#!/usr/bin/env bash
# Set everything up (virtual environment in .venv, torch==2.13.0 first) and run the test suite.
# Two pytest-xdist workers (one CPU thread each on 2 cores; work stealing, the heavy tests first) and the 15
# slowest tests listed at the end. Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`, or
# `bash scripts/test.sh -n 0` for one process.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest -n 2 --dist worksteal --durations=15 "$@"
