#!/usr/bin/env bash
# Stop what start_cluster.sh started: slurmd, slurmctld, munged; restore any
# slurm.conf that was there before. Safe to run twice.
set -uo pipefail

DIR="${GALMORPH_SLURM_DIR:-/tmp/galmorph-slurm}"
CONF=/etc/slurm/slurm.conf

stop_pidfile() {
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "stop_cluster.sh: $name ($pid) did not stop, killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
}

# Cancel leftover jobs first so their processes do not outlive the daemons.
if command -v scancel >/dev/null && [[ -s $DIR/slurmctld.pid ]]; then
    scancel --full --user=root 2>/dev/null || true
fi
stop_pidfile slurmd "$DIR/slurmd.pid"
stop_pidfile slurmctld "$DIR/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid

if [[ -f $CONF ]] && grep -q "^# galmorph test cluster" "$CONF"; then
    if [[ -f $DIR/slurm.conf.orig ]]; then
        mv "$DIR/slurm.conf.orig" "$CONF"
    else
        rm -f "$CONF"
    fi
fi
echo "SLURM cluster stopped"
