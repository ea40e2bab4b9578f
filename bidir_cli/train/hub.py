"""Pushing a run's model and card to the Hugging Face Hub: once, after the final evaluation.

The trainer never pushes (``trainer_args.TRAINER_ARGS`` gives it ``push_to_hub: false``): a model pushed during
training would lack its evaluation results, and a push that fails must not fail a run whose model is saved. The
token comes from the ``HF_TOKEN`` environment variable (or ``hf auth login``), never from the config, so no
secret reaches config.yaml, meta.json or the card. The outcome is returned for meta.json's ``push``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..console import log

if TYPE_CHECKING:
    from ..config.training import TrainingConfig
    from ..runs.rundir import RunDir


def push_model(model, run: RunDir, training: TrainingConfig) -> dict[str, Any]:
    """Upload ``run/model`` (weights, configuration, README.md card) to ``training.hub_model_id``.

    Returns:
        meta.json's ``push``: the repository, revision and privacy asked for, and ``status`` ``pushed`` (with the
        commit ``url``), ``failed`` (with the ``error``) or ``skipped`` (offline, with the ``reason``).
    """
    from huggingface_hub import constants

    outcome: dict[str, Any] = {
        "repo": training.hub_model_id,
        "revision": training.hub_revision,
        "private": training.hub_private_repo,
    }
    where = f"https://huggingface.co/{training.hub_model_id}" + (
        f" (branch {training.hub_revision})" if training.hub_revision else ""
    )
    if constants.is_offline_mode():
        log(f"offline (HF_HUB_OFFLINE): would have pushed {run.model} (the model and its card) to {where}")
        return outcome | {"status": "skipped", "reason": "offline (HF_HUB_OFFLINE)"}
    try:
        url = model.push_to_hub(
            training.hub_model_id,
            private=training.hub_private_repo,
            local_model_path=str(run.model),
            exist_ok=True,
            revision=training.hub_revision,
            commit_message=f"bidir run {run.path.name}",
        )
    except Exception as e:  # a failed push is reported; the run, saved and evaluated, stays completed
        error = f"{type(e).__name__}: {e}"
        log(f"push to {where} failed: {error}; the run is complete, push {run.model} again by hand")
        return outcome | {"status": "failed", "error": error}
    log(f"pushed {run.model} to {where}")
    return outcome | {"status": "pushed", "url": str(url)}
