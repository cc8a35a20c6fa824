import { HOST_EXIT, HOST_OPTION } from './common';
import type { CommandDoc } from './types';

export const status: CommandDoc = {
  name: 'bgmon-status',
  summary: 'show jobs and their state, computed now from their records and /proc',
  synopsis: [
    'bgmon-status [NAME|GLOB|NAME@ID...] [--history] [--status S1,S2] [--idle DUR] [--json|--table] [--resources] ' +
      '[--host H1,H2]',
    'bgmon-status --follow [--until-done] [NAME|GLOB|NAME@ID...] [--status S1,S2]',
  ],
  description: [
    'Prints every job (or the named ones), oldest first, with its state computed on every call from ' +
      'its record and /proc: a record that says RUNNING is never trusted. NDJSON records when stdout ' +
      'is not a terminal, a table on one: NAME STATUS PID START AGE EXIT [NOTE] CMD. START is the local ' +
      'start time (HH:MM today, else MM-DD HH:MM); AGE is how long the job has run or ran (45s, 2h59m, ' +
      '3d4h); EXIT is the exit code, the signal\'s name, or "-"; NOTE (shown when a row has one) says ' +
      '"idle 5m" for a RUNNING job silent for over a minute (or --idle DUR), "starts 02:30" for a QUEUED ' +
      'job started with --in or --at, or why a job is CANCELLED, ' +
      'DEAD or FAILED before it ran (the record\'s "reason"); CMD is cut to the terminal\'s width ' +
      '($COLUMNS when stdout is not a terminal; no limit when unknown). No colour.',
    'Every record carries "log_bytes" and "last_output_at": the size and last write (mtime) of its log, ' +
      'read when printed (null when there is no log; last_output_at is null while the log is empty). ' +
      '--idle DUR lists only the RUNNING jobs silent that long: nothing in their log for DUR, or nothing ' +
      'at all since they started DUR ago.',
    "Without names it lists every job and never reads stdin (a caller's stdin may be a pipe that never " +
      'closes); "-" as the only name reads names from NDJSON records on stdin, and an empty stdin ' +
      'selects nothing. A queued job whose predecessors have all ended is started or cancelled on the ' +
      'way; one whose lock is stuck is listed but not advanced (a note on stderr).',
    'Each run of a name has its own id. NAME@ID lists that one run: the current run if its id matches, ' +
      'else the kept record of a run it replaced (history/<name>@<id>.json); a record read on stdin ' +
      'selects the run its "id" names. --history lists the kept past runs of the selected names too ' +
      '(of every name without names), all runs together sorted by created_at, oldest first. History ' +
      'is never read without --history or NAME@ID.',
    '--follow prints the selected records (event "current"), then one NDJSON line per change as it ' +
      'happens, always NDJSON (also on a terminal): the full record plus "event": started (a run ' +
      'appears running; a rerun of a name is a new run), queued, running (left the queue), paused, ' +
      'resumed, ended (any end: the record carries the outcome; a corrected outcome, e.g. DEAD then ' +
      'SUCCEEDED, is printed again), removed (the last record seen). A line per run and state, never ' +
      'twice. Globs are matched again as jobs come and go; NAME@ID (or a record on stdin) follows that ' +
      'one run until it ends, never the runs that replace it. Reacts to file events in jobs/ at once, and ' +
      'looks at /proc every 250 ms for what no file announces (DEAD, paused or resumed by a signal). ' +
      'It runs until SIGINT, SIGTERM or SIGHUP (exit 130, 143, 129, quietly), or with --until-done ' +
      'until every selected job has ended (exit as bgmon-wait would). --status filters the lines.',
    '--resources adds to each record, for a RUNNING or PAUSED job (null otherwise): rss_kb (resident ' +
      'memory of all its processes: group, session and escaped children carrying its BGMON_JOB_ID), ' +
      'cpu_ms (their user + system CPU time, from clock ticks: sysconf CLK_TCK, 100 on Linux), procs, ' +
      'and cpu_pct (% of one CPU since the previous --resources call by anyone, from ' +
      '$BGMON_HOME/run/cpu-sample.json; null on the first). The table gains RSS CPU %CPU PROCS. ' +
      'CPU time of processes that already ended is not counted. A record whose live process is provably ' +
      "another home's or name's job (a copied record, which bgmon-stop refuses too) gets null.",
  ],
  operands: 'jobs',
  options: [
    { flag: 'status', arg: 'S1,S2', values: 'states', commaList: true, help: 'only jobs in these states (any case)' },
    { flag: 'history', help: 'list past runs (replaced by a rerun) too, oldest first' },
    { flag: 'idle', arg: 'DUR', help: 'only RUNNING jobs whose log has been silent for at least DUR' },
    { flag: 'json', help: 'print NDJSON records, also on a terminal' },
    { flag: 'table', help: 'print the table, also into a pipe' },
    { flag: 'follow', alias: 'f', help: 'then print a line per change (with "event") until interrupted' },
    { flag: 'until-done', help: "with --follow: exit once every selected job has ended, with bgmon-wait's code" },
    { flag: 'resources', help: 'add rss_kb, cpu_ms, procs and cpu_pct of running jobs (columns RSS CPU %CPU PROCS)' },
    HOST_OPTION,
  ],
  exit: [
    { code: '0', meaning: 'listed (also when there are no jobs)' },
    {
      code: '0-255',
      meaning:
        '--follow --until-done: as bgmon-wait: one job, its own code; several, 0 if all SUCCEEDED else 1; 3 when a ' +
        'job was removed before it ended',
    },
    { code: '129, 130, 143', meaning: '--follow ended by SIGHUP, SIGINT or SIGTERM' },
    { code: '1', meaning: 'a record file is corrupt: named on stderr, every other job is still listed' },
    {
      code: '2',
      meaning:
        'usage error (also --follow with --table, --resources, --idle or --history; --until-done without --follow)',
    },
    { code: '3', meaning: 'a named job (or glob, or NAME@ID) matches nothing; --until-done with no job selected' },
    HOST_EXIT,
  ],
  examples: [
    { command: 'bgmon-status' },
    { command: "bgmon-status 'stage_*' --status FAILED,DEAD --json | jq -r .name" },
    { command: "bgmon-status --history build --json | jq -r '[.id, .status] | @tsv'", comment: 'every run of build' },
    { command: 'bgmon-status --idle 30m --json | bgmon-stop', comment: 'stop what has hung' },
    {
      command:
        'bgmon-status --follow --until-done \'stage_*\' | jq -r \'select(.event == "ended") | "\\(.name) ' +
        '\\(.status)"\'',
      comment: 'a line per finished stage; exits once all have ended',
    },
    { command: 'bgmon-status --resources --table', comment: 'memory and CPU of every running job' },
  ],
};
