#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine, without systemd: munge, slurmctld and
# slurmd, with their state, logs and PID files under DIR. Installs the Debian packages
# when they are missing.
#
#   .ci/slurm-up.sh DIR      start (the configuration is DIR/slurm.conf)
#   .ci/slurm-down.sh DIR    stop exactly the daemons this script started, by PID
#
# The configuration is also linked at SLURM's default path, /etc/slurm/slurm.conf, as on a
# real cluster: the Snakemake SLURM plugin's job step drops SLURM_* variables (SLURM_CONF
# too) before its inner `srun`, so a configuration elsewhere would not be found there.
# An existing /etc/slurm/slurm.conf that this script did not write is never replaced.
#
# No accounting daemon: `sacct` is disabled, so the Snakemake SLURM plugin must read job
# states with `squeue` (--slurm-status-command squeue), which sees ended jobs for MinJobAge.
set -euo pipefail

dir=$(realpath -m "${1:?usage: $0 DIR}")
etc=/etc/slurm
log() { echo "slurm-up: $*" >&2; }

if [ -e "$etc/slurm.conf" ] && ! grep -q "written by .ci/slurm-up.sh" "$etc/slurm.conf"; then
    log "$etc/slurm.conf exists and is not ours: not touching this machine's SLURM"
    exit 1
fi
# A cluster an interrupted earlier run left behind is stopped first (by its recorded PIDs).
previous=$(readlink "$etc/slurm.conf" 2>/dev/null || true)
if [ -n "$previous" ] && [ "$(dirname "$previous")" != "$dir" ]; then
    bash "$(dirname "$0")/slurm-down.sh" "$(dirname "$previous")"
fi
mkdir -p "$dir/state" "$dir/spool"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    [ "$(id -u)" = 0 ] || { log "SLURM is not installed and this is not root"; exit 1; }
    log "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# --- munge: every SLURM message is signed with this machine's key ------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile /etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- munged --force
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$dir/munged.pid"  # ours to stop
    munge -n | unmunge >/dev/null || { log "munged does not answer"; exit 1; }
fi

# --- slurm.conf: this node's real CPUs and memory, as slurmd itself detects them ----------
host=$(hostname -s)
node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..

# Two stand-in GPUs of type "testgpu" (character devices, like /dev/null) so that GPU
# requests (--gpus=testgpu:N --cpus-per-gpu=..) are scheduled as on a GPU cluster, with
# CUDA_VISIBLE_DEVICES set; the jobs compute on the CPU.
gres_types="" gres=""
rm -f "$dir/gpu0" "$dir/gpu1" "$dir/gres.conf"
if mknod "$dir/gpu0" c 1 3 2>/dev/null && mknod "$dir/gpu1" c 1 3 2>/dev/null; then
    echo "NodeName=$host Name=gpu Type=testgpu File=$dir/gpu[0-1]" > "$dir/gres.conf"
    gres_types="GresTypes=gpu" gres="Gres=gpu:testgpu:2"
else
    log "cannot create stand-in GPU devices; the cluster has no GPUs"
fi

cat > "$dir/slurm.conf" <<CONF
# One-node test cluster written by .ci/slurm-up.sh ($dir)
ClusterName=refsr-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue (the plugin's status command here) must still see jobs that ended long ago
MinJobAge=86400
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
$gres_types
$node $gres NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p "$etc"
ln -sfn "$dir/slurm.conf" "$etc/slurm.conf"
if [ -f "$dir/gres.conf" ]; then ln -sfn "$dir/gres.conf" "$etc/gres.conf"; else rm -f "$etc/gres.conf"; fi
unset SLURM_CONF

slurmctld
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
scontrol ping >/dev/null || { log "slurmctld did not start:"; tail -n 20 "$dir/slurmctld.log" >&2; exit 1; }
slurmd
state=unknown
for _ in $(seq 150); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || { log "node $host is '$state', not idle:"; tail -n 20 "$dir/slurmd.log" >&2; exit 1; }

# A job runs end to end.
sbatch --wait --quiet --output=/dev/null --wrap=true
log "one-node SLURM $(sinfo -V | cut -d' ' -f2) up: partition debug, node $host," \
    "GRES '$(sinfo -h -o %G)' ($etc/slurm.conf -> $dir/slurm.conf)"
