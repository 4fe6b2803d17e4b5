#!/usr/bin/env bash
# Stop the daemons started by tests/slurm/start.sh (by pid file, not by name).
for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
  [[ -s $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null
done
sleep 2
[[ -s /run/munge/munged.pid ]] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null
true
