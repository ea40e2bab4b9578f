#!/usr/bin/env bash
# Hard negatives for the static tier with mined negatives (issue 18, configs/experiments/static-negatives.yaml):
# one negative per pair of each of the static tier's eleven sources, mined with `bidir mine` by the static tier's
# MNRL seed-1 model (trained on these same pairs), each source against its own positives, into
# docs/experiments/static-negatives/mined/<source>.jsonl with its .mined.json record (model fingerprint, options, hashes).
#   bash scripts/mine_static_negatives.sh [RUN]     RUN: default docs/experiments/static/runs/mnrl-seed1
# The miner's options follow sentence-transformers' own example: skip the 10 most similar candidates (likely
# unlabelled positives), draw one of the next 40 at random (seed 1) among those scoring at least 5% below the
# positive. A source already mined is kept (rerun to resume); pairs left without a candidate are dropped, and
# each record counts them. Needs ../shared/data beside the repository and the run's model/ (retrain it with
# `bidir experiment configs/experiments/static.yaml --plan` when only its results were committed).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-docs/experiments/static/runs/mnrl-seed1}
out=docs/experiments/static-negatives/mined
mkdir -p "$out"
for source in debian_descriptions python_docstrings python_docs_sections manpages gnu_info_manuals perlfaq_qa \
    wordnet_glosses gcide_dictionary foldoc_computing jargon_file vera_acronyms; do
  if [ -f "$out/$source.jsonl" ] && [ -f "$out/$source.jsonl.mined.json" ]; then
    echo "$out/$source.jsonl: already mined"
    continue
  fi
  bidir mine "../shared/data/train/$source.jsonl" --model "$run" --output "$out/$source.jsonl" \
    -n 1 --range-min 10 --range-max 50 --relative-margin 0.05 --sampling random --seed 1 --batch-size 256
done
