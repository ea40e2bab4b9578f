"""Choose each loss's scale from the scale-selection runs of scripts/run_experiments.sh.

    python scripts/choose_scale.py RUNS_DIR 10 20 40 > RUNS_DIR/scale_choice.json

Reads RUNS_DIR/scale-<loss>-<scale>/eval/scifact-dev.json (SciFact train claims against its corpus, a
development split outside the test suite) and picks, per loss, the scale with the highest nDCG@10
(the smaller scale on a tie). Prints every candidate's score with the choice, as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bidir_cli.results import EvalResult
from bidir_cli.runs import RunDir


def main() -> None:
    runs, scales = Path(sys.argv[1]), [float(s) for s in sys.argv[2:]]
    choice = {}
    for loss in ("mnrl", "mnbrl"):
        scores = {}
        for scale in scales:
            result = EvalResult.load(RunDir(runs / f"scale-{loss}-{scale:g}").results_file("scifact-dev"))
            scores[f"{scale:g}"] = result.mean["ndcg@10"]
        best = max(scales, key=lambda s: (scores[f"{s:g}"], -s))
        choice[loss] = {"scale": best, "dev_ndcg@10": scores, "dev_suite": "scifact-dev (SciFact train claims)"}
    json.dump(choice, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
