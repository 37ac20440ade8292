#!/usr/bin/env bash
# A single-node Slurm cluster on localhost for the tests, in a private folder.
#
#   test-cluster.sh start DIR [CTLD_PORT SLURMD_PORT]   install (apt) when missing, start, wait idle
#   test-cluster.sh stop DIR                            stop only the daemons `start` started
#
# After `start`, point Slurm commands at the cluster with `export SLURM_CONF=DIR/slurm.conf`.
# Needs root (apt, munged as the munge user, slurmd). Debian 12 ships Slurm 22.05.
set -euo pipefail

cmd=${1:?usage: test-cluster.sh start|stop DIR [CTLD_PORT SLURMD_PORT]}
dir=${2:?usage: test-cluster.sh start|stop DIR [CTLD_PORT SLURMD_PORT]}
ctld_port=${3:-6817}
slurmd_port=${4:-6818}

# A pid is alive when it exists and is not a zombie (exited daemons linger as zombies when
# PID 1 does not reap them).
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

stop_pidfile() {
    local f=$1 pid
    [[ -s $f ]] || return 0
    pid=$(cat "$f")
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

if [[ $cmd == stop ]]; then
    # Reverse order of start.
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munged.started.pid"
    exit 0
fi
[[ $cmd == start ]] || { echo "unknown command $cmd (start|stop)" >&2; exit 2; }

if [[ $(id -u) != 0 ]]; then
    echo "needs root to run munged and slurmd" >&2
    exit 3
fi
installed() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null
}
if ! installed; then
    # Tests start clusters in parallel: the first installs, the others wait for it (apt would
    # refuse them its lock) and then find everything installed.
    exec 9>"${TMPDIR:-/tmp}/spice-slurm-install.lock"
    flock 9
    if ! installed; then
        echo "installing slurmctld slurmd slurm-client munge" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt=(apt-get -o DPkg::Lock::Timeout=300)
        "${apt[@]}" install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >&2 \
            || { "${apt[@]}" update -q >&2 && "${apt[@]}" install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >&2; }
    fi
    flock -u 9
fi

mkdir -p "$dir"/{state,spool,log}
dir=$(cd "$dir" && pwd)
node=$(uname -n)

# A private munged (own socket, pid and seed files), so clusters of concurrent tests are
# independent and `stop` never touches a munged it did not start.
mkdir -p "$dir/munge"
chmod 0755 "$dir"
chown munge:munge "$dir/munge"
chmod 0700 "$dir/munge"
[[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || create-munge-key -f; }
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
socket=$dir/munge/munge.socket
runuser -u munge -- munged --origin=127.0.0.1 --force --socket="$socket" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" --log-file="$dir/munge/munged.log"
for _ in $(seq 50); do [[ -s $dir/munge/munged.pid ]] && break; sleep 0.1; done
cp "$dir/munge/munged.pid" "$dir/munged.started.pid"
for _ in $(seq 50); do (munge -S "$socket" -n | unmunge -S "$socket" >/dev/null 2>&1) && break; sleep 0.1; done

cat >"$dir/slurm.conf" <<EOF
ClusterName=spicetest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF" -N "$node"
for _ in $(seq 300); do
    state=$(sinfo -h -N -n "$node" -o %T 2>/dev/null | head -1 || true)
    if [[ $state == idle ]]; then
        echo "SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
echo "the node did not become idle in 60 s (state: ${state:-none}); logs in $dir/log" >&2
exit 4
