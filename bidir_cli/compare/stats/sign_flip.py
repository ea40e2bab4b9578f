"""The paired sign-flip (randomization) test for one run per side, and the interval that inverts it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Rows of sign assignments per chunk are sized so that one chunk holds about this many numbers (8 MiB),
# which keeps memory flat however many queries or permutations are asked for.
_CHUNK_ELEMENTS = 1 << 20

# Interval ends within this fraction of max |difference| count as equal: sums of the same numbers in
# another order differ by float rounding, and an exact tie (common with nDCG, whose per-query values
# repeat) must never be lost to it.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SignFlipResult:
    """The outcome of a paired randomization test and its dual interval.

    Attributes:
        p: Two-sided p-value.
        exact: True when the p-value is exact (every sign assignment of the non-zero differences
            was enumerated), False for a Monte Carlo estimate.
        flips: Sign assignments evaluated.
        ci: The differences ``delta`` that the test does not reject when applied to
            ``diffs - delta``, at level ``alpha``: the confidence interval that is the test's dual
            (ends may be infinite when there are too few queries to reject anything).
        significant: The test rejects a zero difference (p <= alpha); exactly when ``ci`` excludes 0.
    """

    p: float
    exact: bool
    flips: int
    ci: tuple[float, float]
    significant: bool


def sign_flip_test(
    diffs: Sequence[np.ndarray], permutations: int, rng: np.random.Generator, alpha: float = 0.05
) -> SignFlipResult:
    """Two-sided paired randomization (sign-flip) test of a zero mean difference, and its dual interval.

    Under the null hypothesis the two systems are exchangeable on every query, so each per-query
    difference is as likely to have had the opposite sign. The statistic is the absolute mean over
    strata of the per-stratum mean difference: ``|sum_i w_i d_i|`` with ``w_i = 1 / (strata *
    queries in i's stratum)``; flipping signs query by query flips them within every stratum.

    Sign assignments (rows of 0/1 flips, the observed assignment among them) are evaluated in
    chunks of about 8 MiB, so the assignments never sit in memory at once, however many
    ``permutations`` (the interval keeps only its ``alpha * permutations`` most extreme ends):

    * if ``2**n <= permutations`` (n queries), all ``2**n`` assignments are enumerated;
    * else, if ``2**m <= permutations`` (m queries whose difference is not zero), all ``2**m``
      assignments of those queries are enumerated ``permutations // 2**m`` times, the zero
      differences getting random signs (they matter for the interval only);
    * otherwise ``permutations`` random assignments are drawn and ``p = (count + 1) /
      (permutations + 1)``, the Monte Carlo p-value that counts the observed assignment and so
      never reports 0 (Phipson & Smyth 2010).

    In the first two cases ``p = count / rows`` is exact: a zero difference flipped changes
    nothing, so the null distribution over all ``2**n`` assignments is the one over ``2**m``,
    repeated.

    The interval inverts the same test with the same assignments: ``delta`` is in it when the
    test applied to ``d - delta`` does not reject. For one assignment that flips the queries F,
    the flipped statistic ``|sum_i w_i s_i (d_i - delta)|`` reaches the observed one exactly for
    ``delta`` between the weighted mean of ``d`` over F and over the other queries (solve
    ``|a - b delta| = |A - W delta|``; the point estimate ``A / W`` lies between the two roots).
    The count of assignments at least as extreme is thus a sum of indicators of intervals that all
    hold the estimate, and the non-rejected set is the interval from the ``need``-th smallest
    lower root to the ``need``-th largest upper root, ``need`` being the smallest count the test
    does not reject. Rejection and "0 outside the interval" are one integer comparison.

    Args:
        diffs: Per-query differences (system minus baseline), one 1-D array per stratum.
        permutations: Sign assignments to evaluate when enumeration would take more.
        rng: Source of the random signs.
        alpha: Two-sided level of the test; the interval covers ``1 - alpha``.

    Returns:
        The p-value, whether it is exact, the interval and the decision.
    """
    strata = [np.asarray(x, dtype=float).ravel() for x in diffs]
    d = np.concatenate(strata)
    w = np.concatenate([np.full(s.size, 1.0 / (len(strata) * s.size)) for s in strata])
    n = d.size
    total_weight = float(w.sum())
    observed = float(w @ d)
    tolerance = _TIE_TOLERANCE * float(np.abs(d).max())
    smallest = float(w.min()) / 2  # below this, a flipped weight is zero: no query (or every query) flipped
    # The queries whose difference is not zero first (m of them): an assignment is then a row of n bits,
    # bit j flipping query j, packed little-endian into bytes (bit j is bit j % 8 of byte j // 8).
    order = np.argsort(d == 0, kind="stable")
    m = int(np.count_nonzero(d))
    width = (n + 7) // 8
    # Look-up tables, entry 256 j + b: the sum of w*d (and of w) over the queries of byte j whose bits are set
    # in b. A row's flipped sums are then `width` look-ups, not n multiplications (and no BLAS threads to
    # contend for the cores). Built bit by bit: the entries with bit k set are those without it, plus query k.
    tables = []
    for vector in (w * d, w):
        padded = np.zeros(width * 8)
        padded[:n] = vector[order]
        table = np.zeros((width, 1))
        for k in range(8):
            table = np.concatenate([table, table + padded[k::8, None]], axis=1)
        tables.append(table.ravel())
    byte_offset = 256 * np.arange(width, dtype=np.intp)

    if n < 63 and 1 << n <= permutations:
        rows, exact, pattern_bits = 1 << n, True, n
    elif m < 63 and 1 << m <= permutations:
        rows, exact, pattern_bits = (permutations >> m) << m, True, m
    else:
        rows, exact, pattern_bits = permutations, False, 0
    # p = (count + extra) / denominator; the test does not reject while count >= need.
    extra, denominator = (0, rows) if exact else (1, permutations + 1)
    need = math.floor(alpha * denominator - extra) + 1
    # In the byte holding bit pattern_bits, the bits below it come from the enumerated pattern.
    pattern_mask = np.zeros(width, dtype=np.uint8)
    pattern_mask[: pattern_bits // 8] = 0xFF
    if pattern_bits % 8:
        pattern_mask[pattern_bits // 8] = (1 << pattern_bits % 8) - 1

    count = 0
    lows, highs = np.empty(0), np.empty(0)
    chunk = max(1, _CHUNK_ELEMENTS // (2 * width))
    for start in range(0, rows, chunk):
        size = min(chunk, rows - start)
        # Random bytes: fair coins, eight per byte; padding bits past n weigh nothing.
        flips = np.frombuffer(rng.bytes(size * width), dtype=np.uint8).reshape(size, width) if pattern_bits < n else 0
        if exact:
            # Row t enumerates the pattern t mod 2**pattern_bits (t = 0 is the observed assignment).
            pattern = np.arange(start, start + size, dtype=np.int64) % (1 << pattern_bits)
            enumerated = pattern.astype("<u8").view(np.uint8).reshape(size, 8)
            enumerated = np.pad(enumerated, ((0, 0), (0, max(0, width - 8))))[:, :width]
            flips = (enumerated & pattern_mask) | (flips & ~pattern_mask)
        index = flips + byte_offset
        flipped_wd, flipped_w = (np.take(table, index).sum(axis=1) for table in tables)
        with np.errstate(divide="ignore", invalid="ignore"):
            flipped_mean = flipped_wd / flipped_w
            kept_mean = (observed - flipped_wd) / (total_weight - flipped_w)
        low = np.minimum(flipped_mean, kept_mean) - tolerance
        high = np.maximum(flipped_mean, kept_mean) + tolerance
        # No query flipped, or every one: the statistic equals the observed one whatever delta is.
        everywhere = (flipped_w < smallest) | (flipped_w > total_weight - smallest)
        low[everywhere], high[everywhere] = -np.inf, np.inf
        count += int(np.count_nonzero((low <= 0) & (high >= 0)))
        if need > 0:
            lows = np.concatenate([lows, low])
            highs = np.concatenate([highs, high])
            if lows.size > need:
                lows = np.partition(lows, need - 1)[:need]
                highs = np.partition(highs, highs.size - need)[-need:]

    ci = (float(lows.max()), float(highs.min())) if need > 0 else (-math.inf, math.inf)
    return SignFlipResult(p=(count + extra) / denominator, exact=exact, flips=rows, ci=ci, significant=count < need)
