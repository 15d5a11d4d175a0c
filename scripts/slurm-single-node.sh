#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm test
# (`tests/slurm.rs`) and CI (`.ci/run`). Needs root and Debian's packages.
#
#   scripts/slurm-single-node.sh start    install slurm-wlm and munge if missing, write
#                                         /etc/slurm/slurm.conf, start munged, slurmctld
#                                         and slurmd, wait until the node is idle
#   scripts/slurm-single-node.sh stop     stop the daemons this script started (only those)
#   scripts/slurm-single-node.sh status   print `sinfo` (exit status 1 when Slurm does not answer)
#
# Daemons that were already running are left alone and not stopped by
# `stop`. A slurm.conf this script did not write is never overwritten.
set -euo pipefail

STATE=${SLICEDSCORE_SLURM_STATE:-/var/lib/slicedscore-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by slicedscore scripts/slurm-single-node.sh"
HOST=$(hostname -s)

say() { echo "slurm-single-node: $*" >&2; }
die() { say "$*"; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons); try: sudo $0 $1"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and there is no apt-get to install them"
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y slurm-wlm munge >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y slurm-wlm munge >/dev/null; } \
        || die "apt-get install slurm-wlm munge failed"
}

write_config() {
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/spool" "$STATE/log" "$STATE/started"
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        say "keeping $CONF (not written by this script)"
        return
    fi
    cat >"$CONF" <<EOF
$MARK
ClusterName=slicedscore
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

munge_key() {
    local key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of="$key" status=none
    fi
    chown munge:munge "$key"
    chmod 400 "$key"
}

# Records that this script started daemon $1 (pid file $2).
started() { cp "$2" "$STATE/started/$1.pid"; }

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    munge_key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null | unmunge >/dev/null || die "munged does not answer"
    started munged /run/munge/munged.pid
}

start_slurm() {
    if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
        slurmctld || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
        for _ in $(seq 100); do
            scontrol ping 2>/dev/null | grep -q "is UP" && break
            sleep 0.1
        done
        scontrol ping | grep -q "is UP" || die "slurmctld does not answer (see $STATE/log/slurmctld.log)"
        started slurmctld "$STATE/slurmctld.pid"
    fi
    if [ ! -f "$STATE/slurmd.pid" ] || ! kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null; then
        slurmd || die "slurmd did not start (see $STATE/log/slurmd.log)"
        for _ in $(seq 50); do
            [ -s "$STATE/slurmd.pid" ] && break
            sleep 0.1
        done
        started slurmd "$STATE/slurmd.pid"
    fi
    local state=""
    for _ in $(seq 150); do
        state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
        case "$state" in
        idle* | mix* | alloc*) say "node $HOST is $state"; return ;;
        down* | drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.2
    done
    die "node $HOST is not idle after 30 s (state '${state}'; see $STATE/log/)"
}

stop() {
    local f pid
    for name in slurmd slurmctld munged; do
        f="$STATE/started/$name.pid"
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            say "stopped $name ($pid)"
        fi
        rm -f "$f"
    done
}

case "${1:-}" in
start)
    need_root start
    install_packages
    write_config
    start_munge
    start_slurm
    ;;
stop)
    need_root stop
    stop
    ;;
status)
    sinfo
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
