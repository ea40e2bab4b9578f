"""Profile forward plus backward of the bidirectional loss with torch.profiler and print the top operators.

Usage::

    PYTHONPATH=. python scripts/profile_loss.py                   # both, batch 4096, dim 384, one negative column
    PYTHONPATH=. python scripts/profile_loss.py --impl st --batch 1024 --rows 20

``st`` is sentence-transformers' ``MultipleNegativesRankingLoss(directions=(all four), partition_mode="joint")``,
``ours`` is :class:`bidir_cli.losses.MultipleNegativesBidirectionalRankingLoss`. Each is warmed up once, then
profiled over one call on the same random fp32 embeddings. The summary line splits CPU time into matrix
products (aten::mm, aten::addmm, aten::bmm) and everything else (mostly elementwise passes over the logits).
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

GTE_DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm")


def make_call(impl: str):
    if impl == "ours":
        from bidir_cli.losses import MultipleNegativesBidirectionalRankingLoss

        loss_fn = MultipleNegativesBidirectionalRankingLoss(None)
        return loss_fn.compute_loss_from_embeddings
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss_fn = MultipleNegativesRankingLoss(None, directions=GTE_DIRECTIONS, partition_mode="joint")
    return lambda columns: loss_fn.compute_loss_from_embeddings(columns, None)


def profile_one(impl: str, batch: int, dim: int, negatives: int, rows: int) -> None:
    call = make_call(impl)
    gen = torch.Generator().manual_seed(0)
    columns = [torch.randn(batch, dim, generator=gen).requires_grad_() for _ in range(2 + negatives)]
    call(columns).backward()  # warm-up
    for c in columns:
        c.grad = None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call(columns).backward()
    averages = prof.key_averages()
    print(f"\n=== {impl}: batch {batch}, dim {dim}, {negatives} negative column(s), {torch.get_num_threads()} threads")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=rows))
    total = sum(e.self_cpu_time_total for e in averages)
    matmul = sum(e.self_cpu_time_total for e in averages if e.key in MATMUL_OPS)
    print(
        f"self CPU time {total / 1e6:.2f} s: matrix products {matmul / total:.0%}, "
        f"everything else {(total - matmul) / total:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["st", "ours", "both"], default="both")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--negatives", type=int, default=1, help="hard-negative columns")
    parser.add_argument("--rows", type=int, default=15, help="operators to list")
    args = parser.parse_args()
    for impl in ("st", "ours") if args.impl == "both" else (args.impl,):
        profile_one(impl, args.batch, args.dim, args.negatives, args.rows)


if __name__ == "__main__":
    main()
