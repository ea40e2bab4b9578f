#!/usr/bin/env bash
# The offline quickstart: set everything up (virtual environment in .venv, torch==2.13.0 first),
# train the comparison pair (MNBRL vs MNRL on a StaticEmbedding model, bundled WordNet demo data),
# each evaluated on held-out word -> gloss retrieval, then compare them with significance tests.
# No network needed beyond the package index; a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
bidir train configs/quickstart-mnrl.yaml --overwrite
bidir train configs/quickstart.yaml --overwrite
bidir compare runs/quickstart-mnrl runs/quickstart-mnbrl --metric ndcg@10
