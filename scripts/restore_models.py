"""Rebuild the weights of an experiment's completed cells, exactly, from the files it committed.

Weights are not committed (docs/experiments/.gitignore: about 90 MB a MiniLM cell), so a fresh checkout of a
finished experiment has results but no models, and ``bidir experiment FILE --confirm`` needs the models. Training
is deterministic at a fixed thread count (``--verify`` shows it), so each cell without a model is retrained with its
own train command and threads into a scratch folder, without the final evaluation (the results are committed), and
its model moves into the run folder only when

- the model folder's fingerprint equals the one the cell's committed results files recorded, and
- the train log equals the committed one (timings excepted).

Anything else stops with the difference and leaves the run folder as it was: a model that is not the one the
results came from is never put in its place. The base cell (the untrained model) is rebuilt as ``--cell base``
builds it, under the same check.

    python scripts/restore_models.py configs/experiments/transformer.yaml \
        --output-dir docs/experiments/transformer --jobs 2

Install the package versions the cells recorded (meta.json) first: the script checks them before it trains.
Exit status 0 when every cell has its model, 1 when a rebuilt one differs, 2 on bad input.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bidir_cli.data import load_training_data
from bidir_cli.errors import InputError
from bidir_cli.experiment import Cell, Experiment, set_arguments
from bidir_cli.models import build_model, fingerprint_folder
from bidir_cli.results import EvalResult
from bidir_cli.runs import RunDir, differences, versions


def recorded_fingerprint(run: RunDir) -> str:
    """The model fingerprint the run's results files recorded (they must agree)."""
    prints = {EvalResult.load(p).model.get("fingerprint") for p in run.results_files()}
    prints.discard(None)
    if len(prints) != 1:
        raise InputError(f"{run.path}: its results files record {len(prints)} model fingerprints, not one")
    return prints.pop()


def version_mismatches(exp: Experiment, cells: list[Cell]) -> list[str]:
    """Packages whose installed version differs from the one a cell recorded: a model saved by another version
    need not be byte-identical (config.json records the transformers version), so nothing is rebuilt then."""
    here = versions()
    found = {}
    for cell in cells:
        for package, recorded in exp.run_dir(cell).read_meta().versions.items():
            if here.get(package, recorded) != recorded:
                found[package] = f"{package} {recorded} (installed: {here[package]}; cell {cell.name})"
    return sorted(found.values())


def rebuild(exp: Experiment, cell: Cell, scratch: Path) -> RunDir:
    """The cell retrained (or, for the base cell, rebuilt) into ``scratch``, without evaluation."""
    again = RunDir(scratch / cell.name)
    if cell.kind == "base":
        from transformers import set_seed

        # As Experiment.run_base builds it (that method also writes the run folder, so it is not called here).
        cfg = cell.config
        texts = None
        if cfg.model.static is not None and cfg.model.static.tokenizer == "train":
            texts = load_training_data(cfg.data, Path(exp.spec.base).parent, cfg.training.seed).texts()
        set_seed(cfg.training.seed)
        build_model(cfg.model, texts).save(str(again.model))
        return again
    command = exp.train_command(cell, output=again.path) + set_arguments({"evaluation.suite": None})
    log = scratch / f"{cell.name}.log"
    with log.open("w", encoding="utf-8") as f:
        f.write(f"$ {shlex.join(command)}\n")
        f.flush()
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=exp.env())
    if done.returncode:
        raise RuntimeError(f"cell {cell.name}: training exited {done.returncode}; see {log}")
    return again


def restore(exp: Experiment, cell: Cell, scratch: Path) -> str:
    run = exp.run_dir(cell)
    if run.model.exists():
        return f"{cell.name}: has its model"
    expected = recorded_fingerprint(run)
    again = rebuild(exp, cell, scratch)
    found = [] if cell.kind == "base" else differences(run, again, set())  # the train log only
    if (got := fingerprint_folder(again.model)) != expected:
        found.append(f"model fingerprint {got[:16]}, the results recorded {expected[:16]}")
    if found:
        raise RuntimeError(
            f"cell {cell.name}: the rebuilt model is not the one its results came from: {'; '.join(found)}"
        )
    shutil.move(str(again.model), str(run.model))
    return f"{cell.name}: restored (fingerprint {expected[:16]})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", help="the experiment YAML file")
    parser.add_argument("--output-dir", required=True, help="the experiment's output folder")
    parser.add_argument("--jobs", type=int, default=1, help="cells rebuilt at once")
    args = parser.parse_args()
    try:
        exp = Experiment(args.file, args.output_dir, jobs=args.jobs)
        cells = exp.test_cells()
        incomplete = [c.name for c in cells if exp.state(c) != "done"]
        if incomplete:
            raise InputError(f"{args.file}: cells not complete: {', '.join(incomplete)} (run the experiment first)")
        if mismatches := version_mismatches(exp, cells):
            raise InputError(f"the cells ran other versions; install them first: {', '.join(mismatches)}")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bidir-restore-") as tmp:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(restore, exp, c, Path(tmp)) for c in cells]
            failed = False
            for future in futures:
                try:
                    print(future.result(), flush=True)
                except (RuntimeError, InputError) as e:
                    print(f"error: {e}", file=sys.stderr, flush=True)
                    failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
