#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the workflow's Slurm test.
#
#   tests/slurm/localhost-cluster.sh install   apt-get install slurm-wlm and munge (root, Debian)
#   tests/slurm/localhost-cluster.sh start     configure and start munged, slurmctld, slurmd
#   tests/slurm/localhost-cluster.sh stop      stop the daemons started here
#
# Meant for throwaway machines (CI): the configuration goes to Slurm's default place,
# /etc/slurm/slurm.conf, because Snakemake's job-step plugin removes SLURM_* variables (SLURM_CONF
# included) before its nested srun; a slurm.conf that this script did not write is never
# overwritten. State, spool and logs live in $FLOWSIM_SLURM_DIR (default /tmp/flowsim-slurm).
# The node "localhost" has all CPUs, most of the free memory and one fake GPU
# (GRES on /dev/null), so jobs that ask for --gpus=1 are accepted. No accounting daemon: finished
# jobs stay visible to squeue/scontrol for MinJobAge = 600 s, and Snakemake's Slurm plugin must
# poll with `squeue` (sacct would fail and hang it).
set -euo pipefail

DIR="${FLOWSIM_SLURM_DIR:-/tmp/flowsim-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by flowsim tests/slurm/localhost-cluster.sh"

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
        echo "slurm-wlm and munge are installed"
        return
    fi
    [ "$(id -u)" -eq 0 ] || { echo "installing Slurm needs root" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
}

write_config() {
    local cpus mem
    cpus=$(nproc)
    # leave a quarter of the free memory (and at least 1 GB) to the machine itself
    mem=$(awk '/MemAvailable/ {m = int($2 / 1024 * 0.75); print (m > 1000 ? m : 1000)}' /proc/meminfo)
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        echo "$CONF exists and was not written here; refusing to replace this machine's Slurm setup" >&2
        exit 1
    fi
    mkdir -p "$DIR"/{spool,state,log} /etc/slurm
    cat > "$CONF" <<EOF
$MARK
ClusterName=flowsim
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    echo "NodeName=localhost Name=gpu Count=1 File=/dev/null" > /etc/slurm/gres.conf
}

up() {
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
    install
    if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF" && up; then
        echo "Slurm is already up"
        return
    fi
    write_config
    mkdir -p /run/munge
    chown munge:munge /run/munge
    pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
    slurmctld -i
    slurmd -N localhost
    for _ in $(seq 30); do
        if up; then
            echo "Slurm is up (partition debug, node localhost, 1 fake GPU)"
            return
        fi
        sleep 1
    done
    echo "Slurm did not come up; logs in $DIR/log" >&2
    exit 1
}

stop() {
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    echo "Slurm stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
