#!/usr/bin/env bash
# A one-node SLURM "cluster" on localhost (Debian's slurm-wlm 22.05 + munge), no systemd.
# For trying profiles/slurm on a laptop and for the SLURM tests in CI. Run as root.
#   bash tests/slurm/start.sh [--install]     # about 30 s; stop it with tests/slurm/stop.sh
# The node has one fake GPU (gres on /dev/null) so that rules asking for `gpu: 1` get scheduled.
# No accounting (AccountingStorageType=accounting_storage/none): Snakemake's SLURM plugin must
# then be told `--slurm-status-command squeue --slurm-no-account` (see tests/slurm/README.md).
set -euo pipefail

if [[ "${1:-}" == "--install" ]] || ! command -v slurmctld >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
conf_dir=/etc/slurm

# munge: the authentication daemon slurm needs
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
[[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm "$conf_dir"
chown -R slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm

cat > "$conf_dir/gres.conf" <<CONF
NodeName=localhost Name=gpu Type=fake Count=1 File=/dev/null
CONF

cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=plateflow-ci
SlurmctldHost=localhost
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
InactiveLimit=0
MinJobAge=600
KillWait=5
Waittime=0
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=debug-gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
CONF

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd -N localhost
for _ in $(seq 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)'; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "slurm did not come up; see /var/log/slurm/*.log" >&2
exit 1
