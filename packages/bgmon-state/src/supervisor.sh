# bgmon supervisor: one per running job, about 1.5 MB resident under dash, and the job's parent.
# It waits for the job, writes its exit status into the job's end file, then becomes a Node
# process that folds the end into the record. It reads no record, parses no JSON, writes nothing
# by path and forks nothing but the job, so a record of any size costs it nothing and bgmon-stop
# finds nothing of ours to confuse with the job.
#
# Run by launch.ts as: sh -c "$SCRIPT" bgmon-supervisor NAME ID NODE ENTRY CMD [ARG...]
# (ENTRY: the bgmon binary that started it, run with --job-ended NAME ID once the job has ended)
# with these descriptors, all opened by bgmon-start without following links:
#   1  a pipe to bgmon-start: the job's pid, printed once the job leads its own session
#   3  the gate: "go" arrives once the RUNNING record is on disk; without it the command never runs
#   4  the job's log (a new inode, opened for append)
#   5  the end file, reserved at start, overwritten in place (no free space needed):
#      "<status>\n" as wait reports it (128+n for signal n); its mtime is the end time
# The job gets BGMON_JOB_ID in its environment; the supervisor itself does not carry it.

name=$1 id=$2 node=$3 entry=$4
shift 4

(
  # sh ignores INT and QUIT in background children: env gives the job the defaults back.
  # setsid runs in place (this subshell leads no group), so the pid printed is the job's own,
  # already leader of its session and group when bgmon-start reads it.
  # shellcheck disable=SC2016 # the inner script expands its own parameters
  exec env --default-signal=INT,QUIT setsid -- /bin/sh -c '
    echo "$$"
    IFS= read -r go <&3 || go=
    exec 3<&- 5>&-
    if [ "$go" != go ]; then
      echo "bgmon: bgmon-start was interrupted before the command ran" >&4
      exit 125
    fi
    BGMON_JOB_ID=$1
    export BGMON_JOB_ID
    shift
    exec "$@" </dev/null >&4 2>&4 4>&-
  ' bgmon-job "$id" "$@"
) &
pid=$!
exec 3<&- 4>&- >/dev/null

wait "$pid"
status=$?
printf '%s\n' "$status" >&5
exec 5>&-

# Node folds the end into the record and starts what was queued behind the job. If it cannot
# (gone, killed), the end file above is still the truth and the next reader folds it.
exec "$node" "$entry" --job-ended "$name" "$id"
