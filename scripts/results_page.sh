#!/usr/bin/env bash
# Regenerate docs/results.md from the committed experiment folders (docs/experiments/*), by bidir's own commands:
# each experiment's report rebuilt from its cells' results-only files, the proposal section from
# scripts/proposal_tests.py, then one page (a summary first). Runs nothing that trains; needs ../shared beside the
# repository for the proposal's reference table.
#   bash scripts/results_page.sh
set -euo pipefail
shopt -s nullglob  # a runs folder with no cell yet counts 0 complete
cd "$(dirname "$0")/.."
source scripts/setup_env.sh  # the pinned environment, with BIDIR_MINILM set
folders=()
pending=()
running=()
for name in static static-negatives transformer gpu; do
  folder=docs/experiments/$name
  file=configs/experiments/$name.yaml
  if [ ! -d "$folder/runs" ]; then
    pending+=("\`$file\`")
    continue
  fi
  # An experiment with cells still to run is not reported: its first report fixes the plan hash that
  # --confirm checks, so the page waits until every cell is complete.
  plan=$(bidir experiment "$file" --output-dir "$folder" --plan)
  if [[ $plan != "# nothing to run"* ]]; then
    # The same test as commit_experiment_cells.sh: meta.json's status, read as JSON.
    complete=$(python3 -c 'import json, sys; print(sum(json.load(open(p))["status"] == "completed" for p in sys.argv[1:]))' "$folder"/runs/*/meta.json)
    running+=("\`$file\` ($complete cells complete so far)")
    continue
  fi
  bidir experiment "$file" --output-dir "$folder" --report-only > /dev/null
  folders+=("$folder")
done
sections=()
if [ ${#pending[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; then
  {
    echo "## Not complete yet"
    echo
    [ ${#running[@]} -gt 0 ] && echo "Running, reported once every cell is complete: ${running[*]}."
    [ ${#pending[@]} -gt 0 ] && echo "No cell has run: ${pending[*]}."
    echo "The GPU tier runs only where torch sees a GPU."
  } > docs/experiments/pending.md
  sections+=(--section docs/experiments/pending.md)
fi
# Models rebuilt for a confirmation on another machine (scripts/restore_models.py --rtol): how far they are.
for table in docs/experiments/*/rebuilt.md; do sections+=(--section "$table"); done
# The run-to-run variation of every complete experiment, set against the proposal's one run per loss.
runs=()
for folder in "${folders[@]}"; do runs+=(--runs "$folder"); done
python scripts/proposal_tests.py "${runs[@]}" --output docs/experiments/proposal.md
# What the figures rest on: how far the runs moved, each arm against the untrained model, queries held fixed.
pairs=()
for folder in "${folders[@]}"; do pairs+=("configs/experiments/$(basename "$folder").yaml=$folder"); done
python scripts/reading_notes.py "${pairs[@]}" --output docs/experiments/reading.md
bidir results-page "${folders[@]}" "${sections[@]}" --section docs/experiments/proposal.md \
  --section docs/experiments/reading.md \
  --title "Results: the bidirectional loss against the standard loss on real data" --output docs/results.md \
  --table-into README.md
echo "docs/results.md written from: ${folders[*]}"
