/**
 * The supervisor: a few lines of POSIX sh (about 1 MB resident under dash) that stay behind for
 * each running job, wait for it and fold its end into the record. No Node process stays alive.
 *
 * Protocol with `launch`: the supervisor forks the job's process and prints its pid; the process
 * blocks on fd 3 until bgmon-start has written the RUNNING record and sends "go", so user code
 * never runs without a record. Without "go" (bgmon-start killed) it exits without running the
 * command. The job execs through env (to restore INT and QUIT, which sh ignores in background
 * children) and setsid, so its pid is also its process group and session.
 *
 * At the end the supervisor rewrites the on-disk record's four end fields and renames it into
 * place through the job's spare file (pre-allocated, so a full disk cannot stop the write).
 */
export const SUPERVISOR_SH = `
umask 077
rec=$1 spare=$2 log=$3 stop=$4 id=$5 queue=$6 node=$7 advance=$8
shift 8
(
  IFS= read -r go <&3 || go=
  exec 3<&-
  if [ "$go" != go ]; then
    echo "bgmon: bgmon-start was interrupted before the command ran" >>"$log"
    exit 125
  fi
  # sh ignores INT and QUIT in background children; the job gets them back
  exec env --default-signal=INT,QUIT setsid -- "$@" </dev/null >>"$log" 2>&1
) &
pid=$!
exec 3<&-
echo "$pid"
exec >/dev/null
wait "$pid"
rc=$?
now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
IFS= read -r line <"$rec" || exit 0
case $line in *'"id":"'"$id"'"'*'"status":"RUNNING"'*) ;; *) exit 0 ;; esac
if [ "$rc" -gt 128 ] && [ "$rc" -le 192 ]; then
  code=null
  signal='"SIG'"$(kill -l $((rc - 128)))"'"'
else
  code=$rc
  signal=null
fi
status=FAILED
[ "$rc" -eq 0 ] && status=SUCCEEDED
if [ -f "$stop" ]; then
  IFS= read -r marker <"$stop" || marker=
  [ "$marker" = "$id" ] && status=STOPPED
fi
put() {
  case $line in *"$1"*) line="\${line%%"$1"*}$2\${line#*"$1"}" ;; esac
}
put '"status":"RUNNING"' '"status":"'$status'"'
put '"ended_at":null' '"ended_at":"'$now'"'
put '"exit_code":null' '"exit_code":'$code
put '"signal":null' '"signal":'"$signal"
printf '%s\\n' "$line" >"$spare" && mv -f "$spare" "$rec"
set -- "$queue"/*.queued
[ -e "$1" ] && exec "$node" "$advance" --advance-queue
exit 0
`;
