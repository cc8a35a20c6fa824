import type { CommandDoc } from './types';

export const start: CommandDoc = {
  name: 'bgmon-start',
  summary: 'start a command detached, in its own session, logging to a file',
  synopsis: [
    'bgmon-start [--name N] [--cwd DIR] [--env K=V]... [--after NAME]... [--queue Q [--slots N]] [--in DUR | --at ' +
      'TIME] [--retry N [--retry-delay DUR] ' +
      '[--retry-max-delay DUR] [--retry-on LIST]] [--on-end CMD] [--] CMD [ARG...]',
    'bgmon-start [--cwd DIR] [--env K=V]... [--after NAME]... [--queue Q [--slots N]] [--in DUR | --at TIME] - < ' +
      'SPECS.ndjson',
    'bgmon-start --again NAME|NAME@ID [--name N] [--cwd DIR] [--env K=V]... [--after NAME]...',
  ],
  description: [
    'Starts CMD detached from the terminal, in a new session (its pid is also its process group and ' +
      'session id), stdin from /dev/null, stdout and stderr written by the job itself into ' +
      "$BGMON_HOME/logs/<name>.log, and prints the job's record (one JSON line) at once. The record " +
      "is on disk before the job's own code runs. The exit code or signal and the end time are " +
      'recorded when the job ends, by a small sh supervisor, with no daemon.',
    'Options end at the first word that is not an option, so "--" is optional. Without --name the ' +
      "name is CMD's basename plus a short random suffix. Starting a name whose previous run has " +
      "ended replaces its record and keeps the previous log as logs/<name>@<id>.log. The job's " +
      "environment is the caller's plus --env, BGMON_JOB, BGMON_JOB_ID and BGMON_HOME.",
    'With --after the job is QUEUED (no process is kept for it) until every NAME has ended; it then ' +
      'runs if they all SUCCEEDED, else it ends CANCELLED without running. Whoever notices the end ' +
      '(the supervisor of the job that ended, bgmon-status, bgmon-wait) starts or cancels it. ' +
      "--after NAME@ID waits for that run (current or kept) instead of NAME's current one.",
    'With --queue Q the job is QUEUED until fewer than N jobs of queue Q are RUNNING or PAUSED, then starts; ' +
      'jobs of a queue start in the order they were submitted (first in, first out), though one still ' +
      'waiting for --after or its start time does not hold up those behind it. N is stored with the queue ' +
      '(default 1: one at a time); --slots N on any start into Q changes it from the next decision on. ' +
      'The end of a job starts the next; bgmon-status and bgmon-wait do it too if a supervisor was killed.',
    'With --in DUR or --at TIME the job is QUEUED until then ("not_before" in the record). TIME is HH:MM ' +
      '(today, or tomorrow when that time has passed) or ISO 8601 (2030-01-02T03:04:05Z; local time without ' +
      'a zone). A small sleeper process per start time starts it; bgmon-status and bgmon-wait do it too ' +
      'if the sleeper was killed. --after, --queue and --in/--at combine: the job waits for all of them.',
    'With "-" instead of a command, reads job specs from stdin, one JSON object per line with the fields ' +
      'of a record: "cmd" (required, an argv array), "name", "cwd", "env" ({"K": "V"}), "after" (a name or ' +
      'an array of names, on disk or on an earlier line), "queue", "slots", "in" (a duration, or a number of ' +
      'seconds), "at". Options given ' +
      'beside "-" are defaults for every line. Every line is checked first: a bad one (not JSON, an unknown ' +
      'field, a bad name or cmd, a name given twice, a command line longer than the kernel execs) starts ' +
      'nothing and is named by its line number. Then ' +
      'all are started or queued by this one process, which prints one record each, in order.',
    "--again NAME starts NAME's current run again exactly (NAME@ID: that run, current or kept): the " +
      'same argv, cwd, --env values, --after names, queue, retry settings and --on-end hook (whatever the record ' +
      'keeps about how it was started). Also after a CANCELLED or STOPPED run; refused while the run is QUEUED, ' +
      'RUNNING or ' +
      'PAUSED (exit 1). Options given beside --again override: --name, --cwd and --after replace, --env ' +
      'adds or replaces single keys; a command is refused. --env values are kept in ' +
      '$BGMON_HOME/run/<name>@<id>.env (0600) for this; records show only their keys (env_keys).',
    'With --retry N a failed run is tried again, up to N more times, by the same supervisor: the ' +
      'first wait is --retry-delay, doubling after each attempt up to --retry-max-delay. --retry-on ' +
      'limits which ends are retried (exit codes and signal names, e.g. 1,2,SIGKILL; default: any ' +
      'failure). A run ended by bgmon-stop is never retried. Between attempts the job stays RUNNING ' +
      "with next_attempt_at set; the record counts the attempt and keeps every attempt's end " +
      '(attempts), the log marks where each attempt begins ("--- bgmon: attempt 2 of 4 ---"), and ' +
      'bgmon-wait returns after the last attempt.',
    'With --on-end CMD, `sh -c CMD` runs once when the run has ended, whatever the outcome (also ' +
      'CANCELLED, STOPPED or DEAD), detached, with BGMON_JOB, BGMON_JOB_ID, BGMON_STATUS, ' +
      "BGMON_EXIT_CODE, BGMON_SIGNAL and BGMON_LOG set, its output appended to the job's log after " +
      'a line "--- bgmon: on-end ---". How it ends never changes the job\'s outcome.',
  ],
  operands: 'commands',
  stopEarly: true,
  options: [
    {
      flag: 'name',
      arg: 'N',
      help: "the job's name: [A-Za-z0-9][A-Za-z0-9._-]{0,127}",
      default: "CMD's basename + suffix",
    },
    { flag: 'cwd', arg: 'DIR', values: 'dirs', help: 'working directory', default: 'the current one' },
    { flag: 'env', arg: 'K=V', repeatable: true, help: 'an extra environment variable (repeatable)' },
    {
      flag: 'after',
      arg: 'NAME',
      values: 'jobs',
      repeatable: true,
      help: 'stay QUEUED until NAME ends; run only if it SUCCEEDED, else CANCELLED (repeatable)',
    },
    {
      flag: 'again',
      arg: 'NAME',
      values: 'jobs',
      help: 'start NAME (or the run NAME@ID) again with its argv, cwd, --env values and --after',
    },
    { flag: 'queue', arg: 'Q', help: 'stay QUEUED until queue Q has a free slot; first in, first out' },
    {
      flag: 'slots',
      arg: 'N',
      help: 'how many jobs of the queue may run at once, from now on (stored with the queue)',
      default: '1, or what was set last',
    },
    { flag: 'in', arg: 'DUR', help: 'stay QUEUED for DUR first (e.g. 90s, 1h30m)' },
    { flag: 'at', arg: 'TIME', help: 'stay QUEUED until TIME: HH:MM (today or tomorrow) or ISO 8601' },
    { flag: 'retry', arg: 'N', help: 'try a failed run up to N more times (0 to 1000)', default: '0' },
    { flag: 'retry-delay', arg: 'DUR', help: 'wait before the first retry; doubles after each attempt', default: '1s' },
    { flag: 'retry-max-delay', arg: 'DUR', help: 'the longest wait between attempts', default: '1h' },
    {
      flag: 'retry-on',
      arg: 'LIST',
      commaList: true,
      help: 'retry only these exit codes and signals, e.g. 1,2,SIGKILL',
      default: 'any failure',
    },
    {
      flag: 'on-end',
      arg: 'CMD',
      help: 'run `sh -c CMD` once the run has ended, with BGMON_STATUS and friends set; output to the log',
    },
  ],
  exit: [
    { code: '0', meaning: 'started, or queued (or cancelled at once: the printed record says which)' },
    {
      code: '1',
      meaning:
        'a job of that name is QUEUED, RUNNING or PAUSED (also the run given to --again), or its record is corrupt',
    },
    {
      code: '2',
      meaning:
        'usage error: bad name, flag, --env, --cwd, --queue, --slots, --in, --at, --retry* or --on-end, unknown or ' +
        'cyclic --after, a bad stdin line (nothing is started)',
    },
    { code: '3', meaning: '--again NAME or NAME@ID matches no job or run' },
    { code: '127', meaning: 'CMD not found or not executable (nothing is created)' },
  ],
  examples: [
    { command: 'bgmon-start --name train -- python train.py --epochs 10' },
    { command: 'bgmon-wait fetch && bgmon-start --name build -- make -j4', comment: 'chain two stages' },
    { command: 'bgmon-start --name deploy --after build -- ./deploy.sh', comment: 'runs once build SUCCEEDED' },
    { command: 'bgmon-start --again build', comment: 'the same command, cwd and --env values once more' },
    {
      command:
        'bgmon-start --name fetch --retry 3 --retry-delay 2s --retry-on 1,SIGKILL -- curl -fsSO https://example.com/',
      comment: 'up to 4 attempts',
    },
    {
      command: 'bgmon-start --name job --on-end \'notify-send "$BGMON_JOB: $BGMON_STATUS"\' -- sleep 5',
      comment: 'a desktop notification when it ends',
    },
  ],
};
