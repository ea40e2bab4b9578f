#!/usr/bin/env bash
# The offline quickstart: set everything up (virtual environment in .venv, torch==2.13.0 first), then run the
# quickstart experiment: MNRL and MNBRL on a StaticEmbedding model with the bundled WordNet demo data, sequentially
# (3 seeds each, a look, 3 more only if undecided), each run evaluated on held-out word -> gloss retrieval, then
# the verdict.
# No network needed beyond the package index; a few minutes on 2 CPU cores. A second run retrains nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bidir experiment configs/experiments/quickstart.yaml --jobs 2 "$@"
