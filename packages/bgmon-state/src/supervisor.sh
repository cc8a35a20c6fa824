# bgmon supervisor: one per running job, about 1.5 MB resident under dash, and the job's parent.
# It waits for the job, writes its exit status into the job's end file, then becomes a Node
# process that folds the end into the record. It reads no record, parses no JSON, writes nothing
# by path and forks nothing but the job (and, between retried attempts, `sleep`, `tail`, `wc`),
# so a record of any size costs it nothing and bgmon-stop finds nothing of ours to confuse with
# the job.
#
# Run by launch.ts as:
#   sh -c "$SCRIPT" bgmon-supervisor NAME ID NODE ENTRY TRIES DELAY_MS MAX_DELAY_MS RETRY_ON CMD [ARG...]
# (ENTRY: the bgmon binary that started it, run with --job-ended NAME ID once the job has ended;
# TRIES: attempts in all, 1 without --retry; RETRY_ON: the wait statuses that are retried, as
# " 1 2 137 ", or "any" for every non-zero one; delays in milliseconds, doubling up to the cap)
# with these descriptors, all opened by bgmon-start without following links:
#   1  a pipe to bgmon-start: the job's pid, printed once the job leads its own session
#   3  the gate: "go" arrives once the RUNNING record is on disk; without it the command never runs
#   4  the job's log (a new inode, opened for append)
#   5  the end file, reserved at start, overwritten in place (no free space needed), written in
#      order, one line per write. TRIES=1: "<status>\n" as wait reports it (128+n for signal n).
#      TRIES>1: "attempt K STATUS UPTIME_CS DELAY_MS|-" when attempt K ends (the uptime in 1/100 s
#      from /proc/uptime; a delay means attempt K+1 follows it, "-" that this is the outcome), then
#      "pid P" once attempt K+1 runs as process P. Its mtime is the time of the last line.
#   6  (TRIES>1) the home's run/ directory: a stop marker of this run (stop-marker.ts) there means
#      bgmon-stop ended the attempt, which is never retried. Only its entries are listed.
# The job gets BGMON_JOB_ID in its environment; the supervisor itself does not carry it.

name=$1 id=$2 node=$3 entry=$4 tries=$5 delay=$6 max_delay=$7 retry_on=$8
shift 8

# A claim counts while its stopper lives (its pid is in the claim's name), a confirmation always.
stop_claimed() {
  for f in /dev/fd/6/"$name@$id".stopped /dev/fd/6/"$name@$id".stop-by.*; do
    [ -e "$f" ] || continue
    case $f in *.stopped) return 0 ;; esac
    p=${f##*.stop-by.}
    [ -d "/proc/${p%%.*}" ] && return 0
  done
  return 1
}

retried() {
  [ "$status" != 0 ] && [ "$attempt" -lt "$tries" ] || return 1
  case $retry_on in any) ;; *" $status "*) ;; *) return 1 ;; esac
  ! stop_claimed
}

attempt=1 gate=gated
while :; do
  if [ "$tries" != 1 ]; then
    # the marker starts a line of its own even when the last attempt's output ended mid-line
    # (the log's last byte, read through our own descriptor: no path of the home is opened)
    [ "$attempt" = 1 ] || [ ! -s /dev/fd/4 ] || [ "$(tail -c 1 /dev/fd/4 | wc -l)" -eq 1 ] || printf '\n' >&4
    printf -- '--- bgmon: attempt %s of %s ---\n' "$attempt" "$tries" >&4
  fi
  (
    # sh ignores INT and QUIT in background children: env gives the job the defaults back, before
    # the pid is printed, so an INT sent to the job the moment bgmon-start returns is not lost.
    # setsid runs in place (this subshell leads no group), so the pid printed is the job's own,
    # already leader of its session and group when bgmon-start reads it.
    # shellcheck disable=SC2016 # the inner script expands its own parameters
    exec env --default-signal=INT,QUIT setsid -- /bin/sh -c '
      if [ "$2" = gated ]; then
        echo "$$"
        IFS= read -r go <&3 || go=
        exec 3<&-
        if [ "$go" != go ]; then
          echo "bgmon: bgmon-start was interrupted before the command ran" >&4
          exit 125
        fi
      fi
      exec 5>&- 6>&-
      BGMON_JOB_ID=$1
      export BGMON_JOB_ID
      shift 2
      exec "$@" </dev/null >&4 2>&4 4>&-
    ' bgmon-job "$id" "$gate" "$@"
  ) &
  pid=$!
  if [ "$gate" = gated ]; then
    exec 3<&- >/dev/null
    [ "$tries" = 1 ] && exec 4>&-
  else
    printf 'pid %s\n' "$pid" >&5
  fi
  gate=
  wait "$pid"
  status=$?
  [ "$tries" = 1 ] && break
  read -r up _ </proc/uptime
  if ! retried; then
    printf 'attempt %s %s %s -\n' "$attempt" "$status" "${up%.*}${up#*.}" >&5
    break
  fi
  printf 'attempt %s %s %s %s\n' "$attempt" "$status" "${up%.*}${up#*.}" "$delay" >&5
  ms=$((delay % 1000))
  while [ ${#ms} -lt 3 ]; do ms=0$ms; done
  # bgmon-stop ends the wait by signalling this sleep; the stop marker it left then ends the run
  sleep "$((delay / 1000)).$ms" 4>&- 5>&- 6>&- &
  wait $!
  if stop_claimed; then
    printf 'attempt %s %s %s -\n' "$attempt" "$status" "${up%.*}${up#*.}" >&5
    break
  fi
  attempt=$((attempt + 1))
  delay=$((delay * 2))
  [ "$delay" -gt "$max_delay" ] && delay=$max_delay
done
[ "$tries" = 1 ] && printf '%s\n' "$status" >&5
exec 4>&- 5>&- 6>&-

# Node folds the end into the record and starts what was queued behind it. If it cannot
# (gone, killed), the end file above is still the truth and the next reader folds it.
exec "$node" "$entry" --job-ended "$name" "$id"
