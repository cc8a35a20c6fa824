# bgmon supervisor: one per running job, about 1.5 MB resident under dash, and the job's parent.
# It waits for the job, writes its exit status into the job's end file, then becomes a Node
# process that folds the end into the record (or, in a queue, starts the next job: the hand-off
# below). It reads no record, parses no JSON, writes by path only into a run directory that
# bgmon-start made private, and forks nothing but the job (and, between retried attempts, `sleep`, `tail`, `wc`),
# so a record of any size costs it nothing and bgmon-stop finds nothing of ours to confuse with
# the job.
#
# Run by launch.ts as:
#   sh -c "$SCRIPT" bgmon-supervisor NAME ID NODE ENTRY TRIES DELAY_MS MAX_DELAY_MS RETRY_ON \
#     QUEUE SLOT SEQ CMD [ARG...]
# (ENTRY: the bgmon binary that started it, run with --job-ended NAME ID once the job has ended;
# TRIES: attempts in all, 1 without --retry; RETRY_ON: the wait statuses that are retried, as
# " 1 2 137 ", or "any" for every non-zero one; delays in milliseconds, doubling up to the cap)
# with these descriptors, all opened by bgmon-start without following links:
#   3  a socket to bgmon-start: the job prints its pid there once it leads its own session, then
#      reads the gate: "go" arrives once the RUNNING record is on disk; without it the command never runs
#   4  the job's log (a new inode, opened for append)
#   5  the end file, reserved at start, overwritten in place (no free space needed), written in
#      order, one line per write. TRIES=1: "<status>\n" as wait reports it (128+n for signal n).
#      TRIES>1: "attempt K STATUS UPTIME_CS DELAY_MS|-" when attempt K ends (the uptime in 1/100 s
#      from /proc/uptime; a delay means attempt K+1 follows it, "-" that this is the outcome), then
#      "pid P" once attempt K+1 runs as process P. Its mtime is the time of the last line.
#   6  (TRIES>1) the home's run/ directory: a stop marker of this run (stop-marker.ts) there means
#      bgmon-stop ended the attempt, which is never retried. Only its entries are listed.
# The job gets BGMON_JOB_ID in its environment; the supervisor itself does not carry it.
#
# Hand-off (QUEUE not empty: a plain run of a queue, no retry, no hook, in slot SLOT from 1, its
# queue_seq SEQ; see handoff.ts): once the job has ended, the supervisor takes the next prepared
# run of the queue itself, by creating its claim exclusively, and supervises it in the same slot;
# no Node process runs per job. Only then does it write the end of the job before (so a slot is
# never seen free in between). A prepared run lives in its own directory, made 0700 by Node:
# run/queues/QUEUE.runs/SEQ/ holds its script (quoted data), log, end, claim and start. The job
# creates `start` exclusively before its command runs and only then renames its log and end file
# into place (rename never writes through a link planted there); whoever created `start` first
# (the job, or Node writing "none") decided whether it runs. No hand-off when the queue's limit
# (QUEUE.slots) is below SLOT, when a queued job waits for this run (run/NAME@ID.waited), or at a
# missing directory (a run only Node starts, or one long gone): then it becomes Node, as above.

name=$1 id=$2 node=$3 entry=$4 tries=$5 delay=$6 max_delay=$7 retry_on=$8 queue=$9 slot=${10} seq=${11}
shift 11
# the home, as bgmon-start resolved it (it sets BGMON_HOME for every job)
home=${BGMON_HOME-}

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
    # Both run in the C locale (loading the caller's costs every start ~0.2 ms each); env gives the
    # job the caller's LC_ALL back, or none.
    if [ "${LC_ALL+set}" ]; then lc=LC_ALL=$LC_ALL; else lc=--unset=LC_ALL; fi
    # shellcheck disable=SC2016 # the inner script expands its own parameters
    LC_ALL=C exec setsid -- env --default-signal=INT,QUIT "$lc" /bin/sh -c '
      if [ "$2" = gated ]; then
        echo "$$" >&3
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
      # sh exports an imported name with the last value it set: the job gets its own values back
      # of the names this script sets (assignments from Node, in the environment: argv is public)
      eval "$BGMON_RESTORE"
      shift 2
      exec "$@" </dev/null >&4 2>&4 4>&-
    ' bgmon-job "$id" "$gate" "$@"
  ) &
  pid=$!
  if [ "$gate" = gated ]; then
    exec 3<&-
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
# The job's shell of a handed-off run, already in the job's environment (env -i, in the run's
# script): $1 its run directory, $2 its start line "PID STARTTIME BOOT_ID UPTIME_CS SUP_PID
# SUP_STARTTIME" (read by the job's process before its first exec), $3 its umask, $4 and $5 where
# its log and end file go, $6 mv; then its command. Its start line is created exclusively (umask
# 077: 0600) before anything else. It sets no variable: every one it imported it exports again,
# so one it set would change the job's environment.
# shellcheck disable=SC2016 # the job's shell expands its own parameters
hand_sh='
  umask 077
  [ -f "$1/id.$BGMON_JOB_ID" ] || exit 125
  # where its log and end go: directories of the home, never a link planted in their place (as
  # Node refuses such a home); checked before the start, so that Node decides the run then
  [ -d "${4%/*}" ] && [ ! -L "${4%/*}" ] && [ -d "${5%/*}" ] && [ ! -L "${5%/*}" ] || exit 125
  { [ -e "$1/start" ] || [ -L "$1/start" ]; } && exit 125
  set -C
  { printf "%s\n" "$2" >"$1/start"; } 2>/dev/null || exit 125
  set +C
  # the end file first: then a log that cannot be put in place is at least a recorded failure
  if ! "$6" -fT -- "$1/end" "$5" || ! "$6" -fT -- "$1/log" "$4"; then
    echo "bgmon: could not put the log and end file in place" >&4
    exit 125
  fi
  umask "$3"
  shift 6
  exec 5>&-
  exec "$@" </dev/null >&4 2>&4 4>&-
'

# The same in one process, when bgmon-start found perl (the run's script sets n_perl and execs
# it, marked with the job's BGMON_JOB_ID, under LC_ALL=C, with no PERL* variable of the
# supervisor's): its arguments are those of hand_sh above from $1, but $2 is only the
# supervisor's "PID STARTTIME" (it reads the rest of its start line itself) and no mv; then SETSID (the system call's number),
# OFLAGS (O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW), N and N words NAME=VALUE (the job's environment,
# less the names no shell can hold, as /bin/sh drops them), then its command. It does what
# setsid, env and the job's shell do: its own session and group, INT and QUIT at their defaults,
# the same exclusive start line and renames, the environment as /bin/sh would export it (PWD
# kept only when it names the directory; PPID, IFS and OPTIND as sh resets them), then execs the
# command, or exits as sh would: 127 for ENOENT, ENOTDIR ("not found"), ENAMETOOLONG and ELOOP, else
# 126. (2, 20, 36, 40 on each architecture handoff.ts runs perl on: %! would load Errno.pm.)
# shellcheck disable=SC2016,SC2034 # perl expands its own variables; the run's script uses it
hand_pl='
my ($dir, $start, $mask, $log, $end, undef, $setsid, $oflags, $n) = @ARGV;
my @env = @ARGV[9 .. 8 + $n];
my @cmd = @ARGV[9 + $n .. $#ARGV];
my ($s, $o, $e);
syscall($setsid + 0) == $$ or exit 125;
$SIG{INT} = $SIG{QUIT} = "DEFAULT";
umask 077;
-f "$dir/id.$ENV{BGMON_JOB_ID}" or exit 125;
for ($log, $end) { (my $d = $_) =~ s{/[^/]*\z}{}; -d $d && !-l $d or exit 125 }
sub line { open(my $f, "<", $_[0]) or exit 125; my $l = <$f>; chomp $l; $l }
my $st = line("/proc/self/stat");
my ($up) = split / /, line("/proc/uptime");
$up =~ s/\.//;
$start = "$$ " . (split / /, substr($st, rindex($st, ")") + 2))[19] . " " . line("/proc/sys/kernel/random/boot_id")
  . " $up $start\n";
sysopen($s, "$dir/start", $oflags, 0600) && syswrite($s, $start) == length($start) && close($s) or exit 125;
open($o, ">&=", 4) or exit 125;
if (!rename("$dir/end", $end) || !rename("$dir/log", $log)) {
  print $o "bgmon: could not put the log and end file in place\n";
  exit 125;
}
umask oct $mask;
open($e, "<&=", 5) and close $e;
open(STDIN, "<", "/dev/null") && open(STDOUT, ">&", $o) && open(STDERR, ">&", $o) && close($o) or exit 125;
%ENV = map { split /=/, $_, 2 } @env;
# what sh makes of these three when it imports them
exists $ENV{PPID} and $ENV{PPID} = getppid;
exists $ENV{IFS} and $ENV{IFS} = " \t\n";
exists $ENV{OPTIND} and $ENV{OPTIND} = 1;
my @here = stat ".";
my @pwd = ($ENV{PWD} // "") =~ m{\A/} ? stat $ENV{PWD} : ();
$ENV{PWD} = readlink "/proc/self/cwd" unless @pwd && "@pwd[0, 1]" eq "@here[0, 1]";
# without PATH, sh looks in its default path (execvp would look in /bin and /usr/bin only)
my $file = $cmd[0];
($file) = grep { -f && -x } map { "$_/$cmd[0]" } qw(/usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin)
  if $file !~ m{/} && !exists $ENV{PATH};
exec { $file // $cmd[0] } @cmd;
my $errno = $! + 0;
print STDERR "bgmon-job: exec: $cmd[0]: ", ($errno == 2 || $errno == 20 ? "not found" : "$!"), "\n";
exit((grep { $_ == $errno } 2, 20, 36, 40) ? 127 : 126);
'

field22() { shift 19; t=$1; }

# The next prepared run after the last one this supervisor ran, claimed by creating its claim
# file exclusively (noclobber: no process forked); its directory is then $p.
take_next() {
  [ -n "$queue" ] && [ -n "$home" ] && [ ! -e "$home/run/$name@$id.waited" ] || return 1
  qd=$home/run/queues/$queue
  [ -f "$qd.slots" ] && [ ! -L "$qd.slots" ] && read -r limit <"$qd.slots" || return 1
  [ "$slot" -ge 1 ] && [ "$slot" -le "$limit" ] || return 1
  if [ -z "$me" ]; then
    read -r st </proc/$$/stat
    # shellcheck disable=SC2086 # the fields of /proc/PID/stat after the command name
    field22 ${st##*) }
    read -r boot </proc/sys/kernel/random/boot_id
    me="$$ $t"
  fi
  while :; do
    seq=$((seq + 1))
    p=$qd.runs/$seq
    [ -d "$p" ] && [ ! -L "$p" ] || return 1
    { [ -e "$p/claim" ] || [ -L "$p/claim" ]; } && continue
    set -C
    if { printf '%s %s %s\n' "$slot" "$me" "$boot" >"$p/claim"; } 2>/dev/null; then
      set +C
      return 0
    fi
    set +C
  done
}

# Runs the claimed run $p: true when it was ours (its start names our job), false when it never
# ran by us (voided meanwhile, or its files are not plain files of Node's).
# shellcheck disable=SC2154 # the run's script sets n_cwd, n_mask, n_log, n_end, n_mv, n_perl, defines job
run_taken() {
  for f in script log end; do
    [ -f "$p/$f" ] && [ ! -L "$p/$f" ] || return 1
  done
  n_perl=
  # shellcheck disable=SC1090,SC1091 # prepared by bgmon-start for this run
  command . "$p/script" || return 1
  command exec 4>>"$p/log" 5<>"$p/end" || return 1
  (
    cd -P -- "$n_cwd" || exit 125
    line=$me
    if [ -z "$n_perl" ]; then
      # the job's start line, read by the job's own process (exec keeps its pid and starttime);
      # perl reads it itself (dash reads /proc/self/stat a byte per system call: 0.1 ms)
      read -r st </proc/self/stat
      # shellcheck disable=SC2086 # the fields of /proc/PID/stat after the command name
      field22 ${st##*) }
      read -r up _ </proc/uptime
      line="${st%% *} $t $boot ${up%.*}${up#*.} $me"
    fi
    job "$hand_sh" bgmon-job "$p" "$line" "$n_mask" "$n_log" "$n_end" "$n_mv"
  ) &
  pid=$!
  exec 4>&-
  wait "$pid"
  status=$?
  spid=
  [ -f "$p/start" ] && [ ! -L "$p/start" ] && { read -r spid _ <"$p/start"; } 2>/dev/null
  [ "$spid" = "$pid" ]
}

if [ "$tries" = 1 ]; then
  me=''
  umask 077
  while take_next; do
    printf '%s\n' "$status" >&5
    exec 5>&-
    if ! run_taken; then
      # not ours: make sure it never starts by hand-off; Node starts it, in order
      set -C
      { printf 'none\n' >"$p/start"; } 2>/dev/null
      set +C
      status=none
      break
    fi
    # shellcheck disable=SC2154 # set by the run's script
    name=$n_name id=$n_id
  done
  [ "$status" = none ] || printf '%s\n' "$status" >&5
fi
exec 4>&- 5>&- 6>&-

# Node folds the end into the record and starts what was queued behind it. If it cannot
# (gone, killed), the end file above is still the truth and the next reader folds it.
exec "$node" "$entry" --job-ended "$name" "$id"
