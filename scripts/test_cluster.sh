#!/usr/bin/env bash
# The cluster group: bidir experiment --executor slurm against a real one-node SLURM on this machine.
#
#   sudo bash scripts/test_cluster.sh        # extra arguments go to pytest
#
# Needs root (Debian's slurm-wlm and munge are installed if missing, their daemons started by
# scripts/slurm_local.sh). The tests run as an unprivileged user, bidir-ci, created here, because clusters never
# let root submit; that user must reach the checkout and the Python the virtual environment is built on, so each
# folder above them is made traversable (o+x, not listable). BIDIR_REQUIRE_SLURM=1 makes a SLURM that does not
# answer a failure rather than a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
eval "$(bash scripts/slurm_local.sh start)"
user=bidir-ci
id -u "$user" >/dev/null 2>&1 || useradd --create-home "$user"
for top in "$PWD" "$(python -c 'import sys; print(sys.base_prefix)')"; do
    folder=$top
    while [[ $folder != / ]]; do chmod o+x "$folder"; folder=$(dirname "$folder"); done
done
chmod -R o+rX "$PWD"
runuser -u "$user" -- env SLURM_CONF="$SLURM_CONF" HOME="/home/$user" BIDIR_REQUIRE_SLURM=1 HF_HUB_OFFLINE=1 \
    PYTHONDONTWRITEBYTECODE=1 TOKENIZERS_PARALLELISM=false "$PWD/.venv/bin/python" -m pytest --cluster \
    -p no:cacheprovider --durations=10 tests/test_cluster.py "$@"
