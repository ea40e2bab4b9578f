#!/usr/bin/env bash
# Regenerate docs/results.md (and the README's table) from the committed experiment folders, by bidir's own
# commands: each complete experiment's report rebuilt from its cells' results-only files, the incomplete ones
# listed, the sections written by scripts/proposal_tests.py, scripts/reading_notes.py and scripts/df_change.py. Trains nothing; needs
# ../shared beside the repository (the proposal's reference table, the suites' qrels).
#   bash scripts/results_page.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh  # the pinned environment, with BIDIR_MINILM set
complete() {  # the one definition of a complete experiment (Experiment.complete), as bidir results-page uses it
  python -c 'import sys; from bidir_cli.experiment.cells import Experiment
sys.exit(0 if Experiment(*sys.argv[1:]).complete() else 1)' "$1" "$2"
}
experiments=() runs=() pairs=()
for name in static static-negatives transformer gpu static-8192; do
  experiments+=("configs/experiments/$name.yaml=docs/experiments/$name")
  # An unfinished experiment's summary.json is an interim report (a sequential one's looks so far): its figures
  # enter the sections only once it is complete; the page lists it as running.
  if [ -d "docs/experiments/$name/runs" ] && complete "configs/experiments/$name.yaml" "docs/experiments/$name"; then
    runs+=(--runs "docs/experiments/$name")
    pairs+=("configs/experiments/$name.yaml=docs/experiments/$name")
  fi
done
python scripts/proposal_tests.py "${runs[@]}" --output docs/experiments/proposal.md
python scripts/reading_notes.py "${pairs[@]}" --output docs/experiments/reading.md
python scripts/df_change.py "${pairs[@]}" --output docs/experiments/df-change.md
bidir results-page "${experiments[@]}" --section docs/experiments/proposal.md --section docs/experiments/reading.md \
  --section docs/experiments/df-change.md \
  --title "Results: the bidirectional loss against the standard loss on real data" --output docs/results.md \
  --table-into README.md
