#!/bin/sh
# Slurm Epilog (runs as SlurmdUser on the node when a job ends, however it ended): removes
# every container lapis-run started for the job, in case a step was killed before its own
# cleanup ran (SIGKILL after KillWait, slurmstepd crash). Never fails the node.
[ -n "$SLURM_JOB_ID" ] || exit 0
PATH="$PATH:/usr/local/bin:/usr/bin:/bin"
ids=$(docker ps -aq --filter "label=lapis.slurm.job=$SLURM_JOB_ID" 2>/dev/null)
[ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
exit 0
