"""Calibrate `bidir compare`'s tests on simulated comparisons: false positives, coverage, power.

    python scripts/calibrate_stats.py [--replicates 2000] [--seed 0] [--permutations 2000]
    python scripts/calibrate_stats.py --sequential [--replicates 2000]    # the sequential designs

Simulates comparisons of two configurations on six datasets of 30-300 queries with nDCG@10-like
per-query scores (in [0, 1], discrete, many ties and zeros) and passes the in-memory scores to
bidir_cli.compare.build.column_differences, the function `bidir compare` computes a column's rows with
(tests, intervals, power lines, Holm's correction). Prints one markdown table, a line per variance
structure and design; each cell reads dataset rows (all six together) / the 30-query dataset / the
mean row:

* FPR: the share of null comparisons (no true difference) called significant at alpha 0.05
  (should be 0.03-0.07);
* coverage: the share of 95% intervals that hold the true difference under a shift (0.93-0.97);
* power: the share of the shifted comparisons called significant. The shift is the mean row's
  oracle MDD: 2.80 times the true standard error of the mean row's difference (measured as its
  spread over the null comparisons), the difference a test that knew the variance would find 80%
  of the time; a test that must estimate the variance from 3 runs finds it less often. Next to it,
  the median MDD that compare reported under the null;
* the superseded test's FPR (the sign-flip test on run-averaged per-query scores) on the same
  null comparisons.

The model (latent scale): query i of dataset k under run r of configuration c has ability
``z = a_i + shift_c + run_cr + run_crk + interaction_ci + noise_cri``, with ``a_i ~ N(m_k, 1)``,
and scores ``1 / log2(1 + rank)`` for ``rank = 1 + floor(exp(1.5 - z))`` up to 10, else 0: the
nDCG@10 of a query with one relevant document at that rank. The four variance structures set the
standard deviations of the run terms (a run shifts all its queries), the per-query run noise and
the query x configuration interaction. The true difference of a dataset is exact: ``z`` is normal,
so ``E[score]`` is a sum of normal probabilities over the ten ranks.

With one run per side (``1 vs 1``) the tests cover query sampling only, so that design is simulated
only where runs do not shift: there its target (these two runs' difference over queries like
these) is the configurations' difference.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from bidir_cli.compare.build import column_differences
from bidir_cli.compare.comparison import ALPHA, MEAN, POWER
from bidir_cli.compare.stats import run_level_test, sign_flip_test
from bidir_cli.compare.stats.sequential import INFORMATION, SPENDING, Design, alternative_drift, sequential_test

DATASET_QUERIES = (30, 50, 100, 150, 200, 300)
DATASET_MEANS = (-0.3, 0.2, -0.1, 0.3, 0.0, -0.2)  # each dataset's mean latent ability (its difficulty)
QUERY_SD = 1.0  # spread of the queries' latent ability within a dataset
RANK_OFFSET = 1.5  # rank = 1 + floor(exp(RANK_OFFSET - z)): z > 1.5 is rank 1, z < -0.8 is past rank 10
GAINS = 1 / np.log2(np.arange(2, 12))  # nDCG@10 of one relevant document at ranks 1..10


@dataclass(frozen=True)
class Structure:
    """How scores vary, as latent standard deviations."""

    name: str
    run: float  # a run's shift of all its queries, on every dataset
    run_dataset: float  # a run's shift of all its queries of one dataset
    noise: float  # per-query run noise
    interaction: float  # query x configuration interaction
    single_run: bool  # the 1 vs 1 design's target is the configurations' difference (no run shifts)
    datasets: tuple[int, ...] = DATASET_QUERIES  # queries per dataset
    score_scale: bool = False  # the terms add to the score itself (normal, unbounded), not to a latent ability

    @property
    def total_sd(self) -> float:
        return math.sqrt(QUERY_SD**2 + self.run**2 + self.run_dataset**2 + self.noise**2 + self.interaction**2)


STRUCTURES = (
    Structure("a run shifts all its queries", run=0.05, run_dataset=0.05, noise=0.0, interaction=0.0, single_run=False),
    Structure("per-query run noise", run=0.0, run_dataset=0.0, noise=0.5, interaction=0.0, single_run=True),
    Structure("mixed", run=0.04, run_dataset=0.04, noise=0.4, interaction=0.0, single_run=False),
    Structure("query x configuration", run=0.0, run_dataset=0.0, noise=0.2, interaction=0.4, single_run=True),
    # An independent simulation (issue 31) found the bias-corrected Satterthwaite df anticonservative here at 3 runs
    # a side (0.064): run shifts and a query x configuration term, on the score scale, three datasets.
    Structure(
        "run shifts and query x configuration (score scale)",
        run=0.02,
        run_dataset=0.0,
        noise=0.08,
        interaction=0.08,
        single_run=False,
        datasets=(30, 75, 225),
        score_scale=True,
    ),  # fmt: skip
)
DESIGNS = ((3, 3), (5, 5), (1, 1))


def scores(z: np.ndarray) -> np.ndarray:
    """nDCG@10 of one relevant document at rank ``1 + floor(exp(1.5 - z))`` (0 past rank 10)."""
    rank = 1 + np.floor(np.exp(np.minimum(RANK_OFFSET - z, 10.0))).astype(int)
    return np.where(rank <= 10, GAINS[np.minimum(rank, 10) - 1], 0.0)


def expected_score(mean: float, sd: float) -> float:
    """E[score] for z ~ N(mean, sd^2): rank r holds z in (1.5 - ln r, 1.5 - ln(r - 1)]."""
    upper = RANK_OFFSET - np.log(np.arange(1, 11) - 1.0, where=np.arange(10) > 0, out=np.full(10, -np.inf))
    lower = RANK_OFFSET - np.log(np.arange(1, 11))
    probability = special.ndtr((upper - mean) / sd) - special.ndtr((lower - mean) / sd)
    return float(GAINS @ probability)


def true_differences(structure: Structure, shift: float) -> np.ndarray:
    """Each dataset's expected difference when the system's latent ability (or score) is ``shift`` higher."""
    if structure.score_scale:
        return np.full(len(structure.datasets), shift)
    sd = structure.total_sd
    return np.array([expected_score(m + shift, sd) - expected_score(m, sd) for m in DATASET_MEANS])


def simulate(
    structure: Structure, runs: tuple[int, int], shift: float, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One comparison: per dataset, the system's and the baseline's ``(runs, queries)`` scores."""
    system, baseline = [], []
    run_shift = [rng.normal(0, structure.run, size=(r, 1)) for r in runs]  # the same on every dataset
    for n, mean in zip(structure.datasets, DATASET_MEANS, strict=False):
        # On the score scale a query's difficulty is its base score (it cancels in every paired difference).
        ability = rng.uniform(0.2, 0.8, size=n) if structure.score_scale else rng.normal(mean, QUERY_SD, size=n)
        for side, (r, offset, out) in enumerate(zip(runs, (shift, 0.0), (system, baseline), strict=True)):
            z = (
                ability
                + offset
                + run_shift[side]
                + rng.normal(0, structure.run_dataset, size=(r, 1))
                + rng.normal(0, structure.interaction, size=n)
                + rng.normal(0, structure.noise, size=(r, n))
            )
            out.append(z if structure.score_scale else scores(z))
    return system, baseline


def compare_rows(system, baseline, permutations: int, rng: np.random.Generator, old: bool = False):
    """(significant, ci, mdd) per row, dataset rows then the mean row, from the function `bidir compare` calls.

    ``old``: the superseded test instead, the sign-flip test on run-averaged per-query scores (no mdd).
    """
    names = [f"dataset{k}" for k in range(len(system))]
    if not old:
        found = column_differences(
            dict(zip(names, system, strict=True)),
            dict(zip(names, baseline, strict=True)),
            permutations=permutations,
            seed=[int(rng.integers(2**32))],
        )
        return [(d.significant, d.ci, d.mdd) for d in (found[row] for row in [*names, MEAN])]
    out = []
    for row in [[k] for k in range(len(system))] + [list(range(len(system)))]:
        diffs = [system[k].mean(axis=0) - baseline[k].mean(axis=0) for k in row]
        test = sign_flip_test(diffs, permutations, rng)
        out.append((test.significant, test.ci, math.nan))
    return out


@dataclass
class Outcome:
    """Per row (dataset rows, then the mean row): the calibration's measurements."""

    fpr: np.ndarray  # share of null comparisons called significant
    fpr_old: np.ndarray  # the same for the superseded test, on the same comparisons
    mdd: np.ndarray  # median reported minimum detectable difference under the null
    shift: float  # the mean row's true difference in the shifted comparisons: 2.80 true standard errors
    coverage: np.ndarray  # share of intervals holding the true difference, under the shift
    power: np.ndarray  # share of shifted comparisons called significant
    smallest: int = 0  # the row of the smallest dataset


def calibrate(structure: Structure, runs: tuple[int, int], replicates: int, permutations: int, seed: int) -> Outcome:
    """Null comparisons, then comparisons shifted by the mean row's oracle MDD, ``replicates`` of each.

    The oracle MDD is the difference a test that knew the true standard error (measured here as the
    spread of the mean row's difference over the null comparisons) detects with 80% power:
    ``(z(0.975) + z(0.8)) * se = 2.80 se``.
    """
    rng = np.random.default_rng([seed, STRUCTURES.index(structure), runs[0], runs[1]])
    rows = len(structure.datasets) + 1
    null, null_old = np.zeros(rows), np.zeros(rows)
    mdds = np.empty((replicates, rows))
    estimates = np.empty(replicates)  # the mean row's difference
    for i in range(replicates):
        system, baseline = simulate(structure, runs, 0.0, rng)
        results = compare_rows(system, baseline, permutations, rng)
        null += [significant for significant, _, _ in results]
        mdds[i] = [mdd for _, _, mdd in results]
        estimates[i] = np.mean([s.mean() - b.mean() for s, b in zip(system, baseline, strict=True)])
        null_old += [significant for significant, _, _ in compare_rows(system, baseline, permutations, rng, old=True)]

    oracle = float(special.ndtri(1 - ALPHA / 2) + special.ndtri(POWER)) * float(np.std(estimates, ddof=1))
    shift = optimize.brentq(lambda t: true_differences(structure, t).mean() - oracle, -3, 3)
    truth = true_differences(structure, shift)
    truth = np.append(truth, truth.mean())
    covered, rejected = np.zeros(rows), np.zeros(rows)
    for _ in range(replicates):
        results = compare_rows(*simulate(structure, runs, shift, rng), permutations, rng)
        covered += [low <= t <= high for (_, (low, high), _), t in zip(results, truth, strict=True)]
        rejected += [significant for significant, _, _ in results]
    return Outcome(
        null / replicates,
        null_old / replicates,
        np.median(mdds, axis=0),
        float(truth[-1]),
        covered / replicates,
        rejected / replicates,
        int(np.argmin(structure.datasets)),
    )


def table(outcomes: dict[tuple[str, tuple[int, int]], Outcome]) -> str:
    """The markdown table: a line per structure and design; each cell dataset rows / 30-query row / mean row."""

    lines = [
        "| variance structure | runs | FPR | coverage | power | shift (oracle MDD) | reported MDD | FPR, superseded test |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for (name, runs), o in outcomes.items():

        def three(x: np.ndarray, o: Outcome = o) -> str:
            return f"{x[:-1].mean():.3f} / {x[o.smallest]:.3f} / {x[-1]:.3f}"

        lines.append(
            f"| {name} | {runs[0]} vs {runs[1]} | {three(o.fpr)} | {three(o.coverage)} | {three(o.power)} "
            f"| {o.shift:.4f} | {o.mdd[-1]:.4f} | {three(o.fpr_old)} |"
        )
    return "\n".join(lines) + "\n"


# --- sequential designs (--sequential) --------------------------------------------------------------------------

SEQUENTIAL_LOOKS = ((3, 6, 9), (4, 8, 12, 16))
VARIANTS = tuple((spending, futility, information) for information in INFORMATION for spending in SPENDING
                 for futility in (True, False))  # fmt: skip


@dataclass
class SequentialOutcome:
    """One design variant's measurements over the null and the shifted experiments."""

    fpr: float  # share of null experiments stopped for efficacy at some look
    naive_fpr: float  # share of null experiments with p <= ALPHA at some look (testing at 0.05 every look)
    fixed_fpr: float  # share of null experiments with p <= ALPHA at the last look (the fixed design's test)
    coverage: tuple[float, float]  # the repeated interval at the stop holds the true difference: (null, shifted)
    power: float  # share of shifted experiments stopped for efficacy
    fixed_power: float  # the fixed design's at the most runs, on the same shifted experiments
    disagree: int  # experiments whose stage-wise p <= ALPHA disagrees with the efficacy decision (should be 0)
    runs: tuple[float, float]  # mean runs per arm at the stop: (null, shifted)
    shift: float  # the shifted experiments' true difference (the fixed design's 80%-power difference)


def look_results(system, baseline, looks: tuple[int, ...]) -> list:
    """The run-level test of the mean row (datasets as strata) on the first n runs a side, at each look."""
    return [run_level_test([s[:n] for s in system], [b[:n] for b in baseline]) for n in looks]


def calibrate_sequential(
    structure: Structure, looks: tuple[int, ...], replicates: int, seed: int, variants: tuple = VARIANTS
) -> dict:
    """Null experiments, then experiments shifted by the fixed design's 80%-power difference at the most runs
    (2.80 true standard errors of the mean row's difference there), each analysed by every design variant
    ``(spending, futility, information)`` through the code an experiment uses (sequential_test on the run-level
    test at each look)."""
    rng = np.random.default_rng([seed, STRUCTURES.index(structure), *looks])
    most = looks[-1]
    null = [look_results(*simulate(structure, (most, most), 0.0, rng), looks) for _ in range(replicates)]
    oracle = float(special.ndtri(1 - ALPHA / 2) + special.ndtri(POWER)) * float(
        np.std([r[-1].diff for r in null], ddof=1)
    )
    shift = optimize.brentq(lambda t: true_differences(structure, t).mean() - oracle, -3, 3)
    truth = float(true_differences(structure, shift).mean())
    shifted = [look_results(*simulate(structure, (most, most), shift, rng), looks) for _ in range(replicates)]
    out = {}
    for spending, futility, information in variants:
        drift = alternative_drift(ALPHA, POWER) if futility else None
        design = Design(looks, ALPHA, spending, drift, information)
        found = {}
        for name, experiments, true in (("null", null, 0.0), ("shifted", shifted, truth)):
            outcomes = [sequential_test(r, design, estimate=False) for r in experiments]
            stop = [o.looks[-1] for o in outcomes]
            found[name] = (np.mean([o.decision == "efficacy" for o in outcomes]),
                           np.mean([x.rci[0] <= true <= x.rci[1] for x in stop]), np.mean([x.runs for x in stop]),
                           sum((o.p <= ALPHA) != (o.decision == "efficacy") for o in outcomes))  # fmt: skip
        out[(spending, futility, information)] = SequentialOutcome(
            fpr=float(found["null"][0]),
            naive_fpr=float(np.mean([any(x.p <= ALPHA for x in r) for r in null])),
            fixed_fpr=float(np.mean([r[-1].p <= ALPHA for r in null])),
            coverage=(float(found["null"][1]), float(found["shifted"][1])),
            power=float(found["shifted"][0]),
            fixed_power=float(np.mean([r[-1].p <= ALPHA for r in shifted])),
            disagree=int(found["null"][3] + found["shifted"][3]),
            runs=(float(found["null"][2]), float(found["shifted"][2])),
            shift=truth,
        )
    return out


def sequential_table(outcomes: dict) -> str:
    lines = ["| variance structure | looks | information | spending | futility | FPR | FPR, fixed design | FPR, 0.05 at every look | coverage at the stop "
             "(null / shifted) | power (fixed design) | stage-wise p disagrees | runs per arm (null / shifted, of "
             "most) |", "|---|---|---|---|---|---:|---:|---:|---|---|---:|---|"]  # fmt: skip
    for (name, looks, spending, futility, information), o in outcomes.items():
        lines.append(f"| {name} | {', '.join(map(str, looks))} | {information} | {spending} | {'beta-spending' if futility else 'none'} "
                     f"| {o.fpr:.3f} | {o.fixed_fpr:.3f} | {o.naive_fpr:.3f} | {o.coverage[0]:.3f} / {o.coverage[1]:.3f} | {o.power:.3f} "
                     f"({o.fixed_power:.3f}) | {o.disagree} | {o.runs[0]:.1f} / {o.runs[1]:.1f} of {looks[-1]} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=2000, help="null (and shifted) comparisons per line")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--permutations", type=int, default=2000, help="sign assignments of the 1 vs 1 test")
    parser.add_argument("--sequential", action="store_true",
                        help="calibrate the sequential designs (looks 3,6,9 and 4,8,12,16) instead")  # fmt: skip
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if args.sequential:
        found = {}
        for structure in STRUCTURES[:4]:  # the four structures of the seed statistics
            for looks in SEQUENTIAL_LOOKS:
                for variant, o in calibrate_sequential(structure, looks, args.replicates, args.seed).items():
                    found[(structure.name, looks, *variant)] = o
                print(f"calibrate_stats: {structure.name}, looks {looks}: {time.perf_counter() - start:.0f} s",
                      file=sys.stderr)  # fmt: skip
        sys.stdout.write(sequential_table(found))
        print(f"\n{args.replicates:,} null and {args.replicates:,} shifted experiments per structure and looks, "
              f"alpha {ALPHA}, seed {args.seed}; {time.perf_counter() - start:.0f} s.")  # fmt: skip
        return
    outcomes = {}
    for structure in STRUCTURES:
        for runs in DESIGNS:
            if runs == (1, 1) and not structure.single_run:
                continue
            outcomes[(structure.name, runs)] = calibrate(structure, runs, args.replicates, args.permutations, args.seed)
            elapsed = time.perf_counter() - start
            print(f"calibrate_stats: {structure.name}, {runs[0]} vs {runs[1]}: {elapsed:.0f} s", file=sys.stderr)
    sys.stdout.write(table(outcomes))
    print(
        f"\n{args.replicates:,} null and {args.replicates:,} shifted comparisons per line, alpha {ALPHA}, "
        f"seed {args.seed}, {args.permutations:,} sign assignments (1 vs 1); {time.perf_counter() - start:.0f} s.",
    )


if __name__ == "__main__":
    main()
