"""Save the untrained model of a static-tier config as a run directory, so it can be evaluated as the base.

    python scripts/save_static_base.py CONFIG OUT_DIR [--set key=value ...]

Builds the model exactly as `bidir train` does before its first step (same seed, tokenizer and dimension)
and writes OUT_DIR/model and a meta.json that marks it as untrained.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import set_seed

from bidir_cli.config import load_config
from bidir_cli.models import build_model
from bidir_cli.runs import RunDir, RunMeta, now, versions


def main() -> None:
    config, out, rest = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    overrides = [rest[i + 1] for i in range(0, len(rest), 2) if rest[i] == "--set"]
    cfg = load_config(config, overrides)
    if cfg.model.static is None or cfg.model.static.tokenizer == "train":
        sys.exit("save_static_base: the config must build a StaticEmbedding from an existing tokenizer")
    set_seed(cfg.training.seed)
    model = build_model(cfg.model)
    run = RunDir(out)
    model.save(str(run.model))
    run.write_meta(RunMeta(status="completed", name=out.name, note=f"untrained model of {config}", started=now(),
                           ended=now(), seed=cfg.training.seed, versions=versions(),
                           config=cfg.model_dump(mode="json")))  # fmt: skip


if __name__ == "__main__":
    main()
