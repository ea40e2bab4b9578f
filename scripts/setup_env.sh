#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install bidir into it.
# Sourced by scripts/test.sh and scripts/quickstart.sh; leaves the venv activated.
# torch==2.13.0 goes first: a bare torch requirement would pull a multi-GB CUDA build.
set -euo pipefail
BIDIR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIDIR_VENV="${BIDIR_VENV:-$BIDIR_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$BIDIR_VENV/bin/python" ]; then
    echo "bidir: creating virtual environment $BIDIR_VENV" >&2
    "$PYTHON" -m venv "$BIDIR_VENV"
fi
# shellcheck disable=SC1091
source "$BIDIR_VENV/bin/activate"
stamp="$BIDIR_VENV/.bidir-installed"
want="$(sha256sum < "$BIDIR_ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bidir: installing dependencies into $BIDIR_VENV" >&2
    log="$BIDIR_VENV/install.log"
    # The build backend's warnings would bury the test output: keep them in a log, shown only on failure.
    if ! { python -m pip install --disable-pip-version-check --upgrade pip &&
           python -m pip install --disable-pip-version-check "torch==2.13.0" &&
           python -m pip install --disable-pip-version-check -e "$BIDIR_ROOT[dev]"; } > "$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "bidir: installation failed; the whole log is in $log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
