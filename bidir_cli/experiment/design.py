"""An experiment's design: what decides its statistics, fixed before its first report, and its hash.

The design is the base config (resolved), the overrides (``set``, each arm's), the selection, the seeds, the
suites, the metric, the target difference and the training sample rule: not the code version, the executor, the
scheduler's resources or the threads. plan.json records the design and its hash when the report is first written.
If the design changes afterwards (seeds raised, an arm added, a setting changed), running on until the verdict
suits is optional stopping: the p-values and intervals no longer mean what they say. The report's verdict then
says so, naming what changed, and ``--confirm`` refuses. Experiments whose first report recorded no design (before
design hashes existed) or another hash version are "not comparable", never flagged.

The plan hash (confirm.plan_hash) stays as provenance: it also covers the code, so every code commit moves it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..eval.metrics import PRIMARY_METRIC
from .cells import Experiment
from .identity import portable
from .spec import SequentialConfig

DESIGN_HASH_VERSION = 1


def design(exp: Experiment) -> dict[str, Any]:
    """The design as plain JSON (paths relative to the checkout, so a clone elsewhere computes the same)."""
    spec = exp.spec
    found = {
        "base": exp.base_config.model_dump(mode="json"),
        "set": spec.set,
        "arms": spec.arms,
        "baseline": spec.baseline,
        "select": spec.select.model_dump(mode="json") if spec.select else None,
        "seeds": spec.seed_list,
        "include_base": spec.include_base,
        "suites": {"evaluate": exp.suites, "confirm": spec.confirm},
        "metric": PRIMARY_METRIC,
        "target_diff": spec.target_diff,
        "vary_sample": spec.vary_sample,
        "processes_per_cell": exp.processes,  # the global batch
        "sequential": _sequential(spec.sequential),
    }
    return json.loads(json.dumps(portable(found, exp.root)))


def _sequential(seq: SequentialConfig | None) -> dict[str, Any] | None:
    """The sequential design; ``information: runs`` (the default, and the only choice before ``information``
    existed) is left out, so that designs committed before it keep their hash."""
    if seq is None:
        return None
    return seq.model_dump(mode="json", exclude={"information"} if seq.information == "runs" else None)


def design_hash(found: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


def design_changes(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed between the recorded design and this one, in a reader's words (empty when nothing did)."""
    changes = []
    for key in sorted(set(recorded) | set(now)):
        before, after = recorded.get(key), now.get(key)
        if before == after:
            continue
        if key == "seeds":
            changes.append(f"seeds: {_seeds(before)} -> {_seeds(after)}")
        elif key == "arms" and isinstance(before, dict) and isinstance(after, dict):
            added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
            altered = sorted(a for a in set(before) & set(after) if before[a] != after[a])
            parts = [f"{label} {', '.join(names)}" for label, names in
                     (("added", added), ("removed", removed), ("changed", altered)) if names]  # fmt: skip
            changes.append(f"arms: {'; '.join(parts)}")
        elif isinstance(before, dict) and isinstance(after, dict):
            inner = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            changes.append(f"{key}: {', '.join(inner)} changed")
        else:
            changes.append(f"{key}: {json.dumps(before)} -> {json.dumps(after)}")
    return changes


def _seeds(seeds: Any) -> str:
    if isinstance(seeds, list) and seeds == list(range(1, len(seeds) + 1)):
        return f"{len(seeds)} per arm"
    return json.dumps(seeds)


def design_status(exp: Experiment, plan: dict[str, Any]) -> tuple[str, list[str]]:
    """``same``, ``changed`` (with what changed) or ``not comparable`` (the first report recorded no design of
    this hash version), for the plan.json record ``plan``."""
    if plan.get("design_hash_version") != DESIGN_HASH_VERSION or "design" not in plan:
        return "not comparable", []
    now = design(exp)
    if design_hash(now) == plan.get("design_hash"):
        return "same", []
    return "changed", design_changes(plan["design"], now) or ["the design's hash"]
