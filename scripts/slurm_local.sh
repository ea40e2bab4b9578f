#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for bidir's cluster tests (tests marked `cluster`).
#
#   sudo bash scripts/slurm_local.sh start [FOLDER]   # installs slurm-wlm and munge if missing, starts
#                                                     # munged, slurmctld and slurmd; prints `export SLURM_CONF=...`
#   sudo bash scripts/slurm_local.sh stop [FOLDER]
#
# Everything it writes (slurm.conf, state, logs) lies in FOLDER (default /tmp/bidir-slurm); it needs root (the
# daemons do). No accounting daemon: `sacct` does not work here, which bidir never relies on.
set -euo pipefail
action=${1:-start}
dir=${2:-/tmp/bidir-slurm}

if [[ $action == stop ]]; then
    for daemon in slurmd slurmctld; do
        [[ -f $dir/$daemon.pid ]] && kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
    done
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
mkdir -p "$dir/state" "$dir/spool"
chown -R slurm:slurm "$dir/state"
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=bidir
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=10
MaxArraySize=1001
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
chmod 644 "$dir/slurm.conf"

if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; chown munge:munge /etc/munge/munge.key; }
    runuser -u munge -- munged
fi
bash "$0" stop "$dir"
sleep 1
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
export SLURM_CONF=$dir/slurm.conf
for _ in $(seq 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
        echo "export SLURM_CONF=$dir/slurm.conf"
        exit 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "slurm_local.sh: the node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
exit 1
