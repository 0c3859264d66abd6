#!/usr/bin/env bash
# Start a single-node SLURM cluster (munge, slurmctld, slurmd) as root without
# systemd, for the cluster tests. State and logs live in one temporary folder:
#   GALMORPH_SLURM_DIR   where state/logs go (default: /tmp/galmorph-slurm)
# The job-step side ignores SLURM_CONF, so the config must be /etc/slurm/slurm.conf;
# an existing one is kept aside and restored by stop_cluster.sh.
set -euo pipefail

DIR="${GALMORPH_SLURM_DIR:-/tmp/galmorph-slurm}"
CONF=/etc/slurm/slurm.conf

if [[ $(id -u) -ne 0 ]]; then
    echo "start_cluster.sh: must run as root (it starts munged, slurmctld and slurmd)" >&2
    exit 1
fi
for tool in munged slurmctld slurmd sinfo slurmd; do
    command -v "$tool" >/dev/null || {
        echo "start_cluster.sh: '$tool' not found; install slurmctld slurmd slurm-client munge" >&2
        exit 1
    }
done

mkdir -p "$DIR"/{state,spool,log}
chmod 755 "$DIR"

# --- munge: authentication between the daemons and the clients -------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- munged
fi
for _ in $(seq 50); do
    munge -n >/dev/null 2>&1 && break
    sleep 0.1
done
munge -n | unmunge >/dev/null || { echo "start_cluster.sh: munged did not start" >&2; exit 1; }

# --- slurm.conf: one node with this machine's CPUs, memory below the total ---
HOST=$(hostname -s)
read -r CPUS SOCKETS CORES THREADS TOTAL_MB < <(
    slurmd -C | awk '/^NodeName/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print v["CPUs"], v["SocketsPerBoard"], v["CoresPerSocket"], v["ThreadsPerCore"], v["RealMemory"]
    }'
)
REAL_MB=$(( TOTAL_MB * 85 / 100 ))
DEF_MEM=$(( REAL_MB / CPUS < 2000 ? REAL_MB / CPUS : 2000 ))

if [[ -f $CONF && ! -f $DIR/slurm.conf.orig ]] && ! grep -q "^# galmorph test cluster" "$CONF"; then
    cp -p "$CONF" "$DIR/slurm.conf.orig"
fi
mkdir -p /etc/slurm
cat > "$CONF" <<CONFEOF
# galmorph test cluster, written by tests/slurm/start_cluster.sh
ClusterName=galmorph
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue this long (no slurmdbd, so no sacct):
# at least 3x the first status check delay; an hour covers a whole test session.
MinJobAge=3600
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
DefMemPerCPU=$DEF_MEM
NodeName=$HOST CPUs=$CPUS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFEOF

# --- the daemons (they daemonize themselves) ---------------------------------
slurmctld -c   # -c: start clean, forgetting jobs of an earlier test cluster
slurmd

for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
        echo "SLURM cluster up: node $HOST, $CPUS CPUs, ${REAL_MB} MB; state in $DIR"
        exit 0
    fi
    sleep 0.5
done
echo "start_cluster.sh: the node did not become idle; see $DIR/log/" >&2
sinfo >&2 || true
exit 1
