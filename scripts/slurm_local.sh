#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for the `slurm` tests and for trying
# `ctbench train -m ... hydra/launcher=slurm_cpu` on one machine.
#
#   scripts/slurm_local.sh up      install slurm + munge if missing, write slurm.conf, start munged,
#                                  slurmctld and slurmd, wait until the node is idle (idempotent)
#   scripts/slurm_local.sh down    cancel all jobs, stop slurmd, slurmctld, munged (by PID)
#   scripts/slurm_local.sh status  daemons, node state and queue; exit 0 only when the cluster is up
#
# Needs root (it writes /etc/slurm/slurm.conf and runs the daemons). Debian packages: slurmctld, slurmd,
# slurm-client, munge (installed with apt-get when `sbatch`, `slurmctld`, `slurmd` or `munged` is missing).
# No cgroups (proctrack/linuxproc, task/none): nothing enforces job memory or CPU limits.
# See docs/slurm.md. Environment: CTBENCH_SLURM_STATE (default /tmp/ctbench-slurm) holds the daemons'
# console logs and bin/sacct, a stand-in for `sacct` (no slurmdbd here) that submitit uses to see
# cancelled or killed jobs: put "$CTBENCH_SLURM_STATE/bin" first on PATH when submitting through submitit.
set -euo pipefail

STATE=${CTBENCH_SLURM_STATE:-/tmp/ctbench-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by ctbench scripts/slurm_local.sh"
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/var/run/slurmctld.pid
SLURMD_PID=/var/run/slurmd.pid

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

pid_of() {  # PID from a pidfile, printed only when that process is alive (not a zombie)
  local file=$1 pid st
  [ -s "$file" ] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [ -n "$pid" ] || return 1
  st=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ') || return 1
  [ -n "$st" ] && [ "${st#Z}" = "$st" ] || return 1
  echo "$pid"
}

wait_gone() {  # wait up to $2 tenths of a second for PID $1 to exit (or turn zombie)
  local pid=$1 n=${2:-100} st
  for _ in $(seq "$n"); do
    st=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ') || return 0
    [ -z "$st" ] || [ "${st#Z}" != "$st" ] && return 0
    sleep 0.1
  done
  return 1
}

node_state() { sinfo -h -N -o %t 2>/dev/null | head -1; }

install_packages() {
  local missing=0
  for cmd in sbatch slurmctld slurmd munged mungekey; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing=1
  done
  [ "$missing" = 1 ] || return 0
  command -v apt-get >/dev/null 2>&1 || die "SLURM is not installed and apt-get is missing: install slurmctld, slurmd, slurm-client and munge"
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >"$STATE/apt.log" 2>&1 || {
    apt-get update -q >>"$STATE/apt.log" 2>&1
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >>"$STATE/apt.log" 2>&1
  } || die "apt-get install failed, see $STATE/apt.log"
}

start_munge() {
  if pid_of "$MUNGE_PID" >/dev/null; then return 0; fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  # without -F munged daemonizes and writes its pidfile; setpriv execs, so no wrapper process stays behind
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged >"$STATE/munged.out" 2>&1 \
    || die "munged did not start: $(tail -1 "$STATE/munged.out")"
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || die "munge does not work (see $STATE/munged.out)"
  say "munged started (pid $(pid_of "$MUNGE_PID" || echo '?'))"
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: move it away (this script is for a throw-away local cluster)"
  fi
  local host cpus mem topo
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(free -m | awk '/^Mem:/{print int($7 * 9 / 10)}')  # 90% of available memory, in MB
  topo=$(slurmd -C 2>/dev/null | head -1 | grep -o 'Boards=.*ThreadsPerCore=[0-9]*' || true)
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  cat >"$CONF" <<EOF
$MARK ($(date -u +%FT%TZ)); single node, no cgroups, no accounting
ClusterName=localcluster
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus $topo RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
SchedulerParameters=batch_sched_delay=0
EnforcePartLimits=ALL
EOF
  say "wrote $CONF (node $host, CPUs=$cpus, RealMemory=${mem} MB)"
}

write_sacct_shim() {  # submitit polls sacct; without slurmdbd answer from slurmctld's memory instead
  mkdir -p "$STATE/bin"
  cat >"$STATE/bin/sacct" <<'EOF'
#!/bin/sh
# sacct stand-in for a cluster without slurmdbd (scripts/slurm_local.sh): answers submitit's query from squeue.
ids=""
while [ $# -gt 0 ]; do
  case "$1" in
    -j|--jobs) shift; ids="${ids:+$ids,}$1" ;;
    -j*) ids="${ids:+$ids,}${1#-j}" ;;
    --jobs=*) ids="${ids:+$ids,}${1#--jobs=}" ;;
  esac
  shift
done
echo "JobID|State|NodeList"
[ -n "$ids" ] || exit 0
squeue -h -t all -j "$ids" -o "%i|%T|%N" 2>/dev/null
exit 0
EOF
  chmod +x "$STATE/bin/sacct"
}

up() {
  [ "$(id -u)" = 0 ] || die "run as root (it writes $CONF and starts the SLURM daemons)"
  mkdir -p "$STATE"
  install_packages
  write_sacct_shim
  start_munge
  local started=0
  if ! pid_of "$CTLD_PID" >/dev/null; then
    pid_of "$SLURMD_PID" >/dev/null && { kill -TERM "$(pid_of "$SLURMD_PID")"; wait_gone "$(cat "$SLURMD_PID")" 50 || true; }
    write_conf
    rm -rf /var/spool/slurmctld /var/spool/slurmd
    mkdir -p /var/spool/slurmctld /var/spool/slurmd
    /usr/sbin/slurmctld -c >"$STATE/slurmctld.out" 2>&1 || die "slurmctld did not start: see /var/log/slurm/slurmctld.log"
    started=1
  fi
  if ! pid_of "$SLURMD_PID" >/dev/null; then
    /usr/sbin/slurmd >"$STATE/slurmd.out" 2>&1 || die "slurmd did not start: see /var/log/slurm/slurmd.log"
    started=1
  fi
  local st=""
  for _ in $(seq 200); do
    st=$(node_state)
    case "$st" in idle|mix|alloc|comp) break ;; esac
    sleep 0.1
  done
  case "$st" in
    idle|mix|alloc|comp) ;;
    down*|drain*|fail*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    *) die "node did not come up (state '${st:-none}'): see /var/log/slurm/slurmd.log and slurmctld.log" ;;
  esac
  if [ "$started" = 1 ]; then say "cluster up: $(sinfo -h -o '%P %a %D %t %N')"; else say "already up: $(sinfo -h -o '%P %a %D %t %N')"; fi
  say "submitit needs sacct: export PATH=$STATE/bin:\$PATH"
}

down() {
  local pid any=0
  if pid_of "$CTLD_PID" >/dev/null && command -v scancel >/dev/null; then
    scancel --full -u "$(id -un)" >/dev/null 2>&1 || true
  fi
  for file in "$SLURMD_PID" "$CTLD_PID" "$MUNGE_PID"; do  # slurmd, then slurmctld, then munged
    pid=$(pid_of "$file") || continue
    any=1
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 100 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 20 || true; }
    say "stopped $(basename "$file" .pid) (pid $pid)"
  done
  [ "$any" = 1 ] || say "nothing was running"
}

status() {
  local ok=0 pid
  for file in "$MUNGE_PID" "$CTLD_PID" "$SLURMD_PID"; do
    if pid=$(pid_of "$file"); then say "$(basename "$file" .pid): running (pid $pid)"; else say "$(basename "$file" .pid): not running"; ok=1; fi
  done
  if [ "$ok" = 0 ] && sinfo >/dev/null 2>&1; then
    sinfo
    squeue
  else
    ok=1
  fi
  return "$ok"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
