#!/usr/bin/env bash
# Stop the daemons that .ci/slurm-up.sh DIR started, by the PIDs recorded under DIR, and
# remove its links in /etc/slurm.
set -uo pipefail
dir=$(realpath -m "${1:?usage: $0 DIR}")
# Jobs of this test cluster that are still there (a failed test) end first.
if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        scancel $jobs 2>/dev/null
        for _ in $(seq 30); do [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break; sleep 1; done
    fi
fi
for name in slurmd slurmctld munged; do
    pidfile="$dir/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
done
for conf in slurm.conf gres.conf; do
    [ "$(readlink "/etc/slurm/$conf" 2>/dev/null)" = "$dir/$conf" ] && rm -f "/etc/slurm/$conf"
done
exit 0
