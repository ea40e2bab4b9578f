"""Pushing to the hub: once, after the final evaluation; offline it says what it would have pushed; a failed push
leaves the run completed; no token is ever written into the run. The hub itself is replaced by a recorder."""

from __future__ import annotations

import json

import pytest
from helpers import run_train, tiny_config, write_tiny_beir

TOKEN = "hf_NotARealTokenButShapedLikeOne1234567890"
PUSH = {"push_to_hub": True, "hub_model_id": "someone/tiny-bidir"}


@pytest.fixture
def online(monkeypatch):
    """The hub reachable as far as bidir can tell (the push itself is replaced in each test)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_offline_the_run_says_what_it_would_have_pushed(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "run"
    result = run_train(str(tiny_config(tmp_path, training=PUSH)), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert f"would have pushed {out / 'model'}" in result.stderr
    assert "https://huggingface.co/someone/tiny-bidir" in result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "completed"
    assert meta["push"] == {"repo": "someone/tiny-bidir", "revision": None, "private": None, "status": "skipped",
                            "reason": "offline (HF_HUB_OFFLINE)"}  # fmt: skip


def test_the_push_comes_after_the_final_evaluation_with_the_card(tmp_path, monkeypatch, online):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "run"
    pushed = []

    def push_to_hub(self, repo_id, **kwargs):
        folder = kwargs["local_model_path"]
        card = open(f"{folder}/README.md", encoding="utf-8").read()
        pushed.append((repo_id, kwargs, card, (out / "eval" / "tiny-beir.json").exists()))
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(SentenceTransformer, "push_to_hub", push_to_hub)
    write_tiny_beir(tmp_path / "tiny-beir")
    config = tiny_config(tmp_path, training={**PUSH, "hub_private_repo": True}, evaluation={"suite": "tiny-beir"})
    result = run_train(str(config), "--output-dir", str(out))
    assert result.exit_code == 0, result.output

    ((repo, kwargs, card, evaluated),) = pushed  # once, not at every checkpoint
    assert (
        repo == "someone/tiny-bidir" and kwargs["private"] is True and kwargs["local_model_path"] == str(out / "model")
    )
    assert evaluated and "model-index" in card  # the card that went up carries the final evaluation
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["push"]["status"] == "pushed"
    assert meta["push"]["url"] == "https://huggingface.co/someone/tiny-bidir/commit/abc"


def test_a_failed_push_is_reported_and_the_run_stays_completed(tmp_path, monkeypatch, online):
    from sentence_transformers import SentenceTransformer

    def push_to_hub(self, repo_id, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(SentenceTransformer, "push_to_hub", push_to_hub)
    out = tmp_path / "run"
    result = run_train(str(tiny_config(tmp_path, training=PUSH)), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert "push to https://huggingface.co/someone/tiny-bidir failed: OSError: connection refused" in result.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "completed"
    assert meta["push"]["status"] == "failed" and meta["push"]["error"] == "OSError: connection refused"
    assert (out / "model" / "README.md").is_file()


def test_no_token_is_written_into_the_run(tmp_path, monkeypatch, online):
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(SentenceTransformer, "push_to_hub", lambda self, repo_id, **kwargs: "https://x/commit/1")
    write_tiny_beir(tmp_path / "tiny-beir")
    config = tiny_config(tmp_path, training={**PUSH, "report_to": ["tensorboard"]}, evaluation={"suite": "tiny-beir"})
    out = tmp_path / "run"
    assert run_train(str(config), "--output-dir", str(out)).exit_code == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"config.yaml", "meta.json", "README.md", "training_args.bin"} <= {p.name for p in files}
    assert [p for p in files if TOKEN.encode() in p.read_bytes()] == []


def test_a_token_in_the_config_is_refused_without_echoing_it(tmp_path):
    out = tmp_path / "run"
    result = run_train(str(tiny_config(tmp_path)), "--output-dir", str(out), "--set", f"training.hub_token={TOKEN}")
    assert (
        result.exit_code == 2 and "training.hub_token: refused: set the HF_TOKEN environment variable" in result.stderr
    )
    assert TOKEN not in result.output and not out.exists()
