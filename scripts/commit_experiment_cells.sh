#!/usr/bin/env bash
# Commit the results-only files of every completed experiment cell in docs/experiments/*, with each experiment's
# report files when they exist, so that an interrupted machine loses no finished cell (issue 18). Weights,
# checkpoints, console logs and mined data stay out (docs/experiments/.gitignore); a cell still running is not
# added (its meta.json status is not "completed").
#   bash scripts/commit_experiment_cells.sh "commit message"
set -euo pipefail
cd "$(dirname "$0")/.."
for run in docs/experiments/*/runs/*/; do
  [ -f "$run/meta.json" ] || continue
  if python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["status"] != "completed")' "$run/meta.json"; then
    git add "$run"
  fi
done
for f in docs/experiments/*/{report.md,summary.json,plan.json,confirmation.json,rebuilt.md} docs/experiments/*/*.png; do
  if [ -f "$f" ]; then git add "$f"; fi
done
if git diff --cached --quiet -- docs/experiments; then
  echo "nothing new to commit"
else
  git commit -q -m "${1:-Experiment results: the results-only files of completed cells}" -- docs/experiments
  git log --oneline -1
fi
