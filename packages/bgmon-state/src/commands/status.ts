import { HOST_EXIT, HOST_OPTION } from './common';
import type { CommandDoc } from './types';

export const status: CommandDoc = {
  name: 'bgmon-status',
  summary: 'show jobs and their state, computed now from their records and /proc',
  synopsis: ['bgmon-status [NAME|GLOB|NAME@ID...] [--history] [--status S1,S2] [--idle DUR] [--json|--table] [--host H1,H2]'],
  description: [
    'Prints every job (or the named ones), oldest first, with its state computed on every call from ' +
      'its record and /proc: a record that says RUNNING is never trusted. NDJSON records when stdout ' +
      'is not a terminal, a table on one: NAME STATUS PID START AGE EXIT [NOTE] CMD. START is the local ' +
      'start time (HH:MM today, else MM-DD HH:MM); AGE is how long the job has run or ran (45s, 2h59m, ' +
      '3d4h); EXIT is the exit code, the signal\'s name, or "-"; NOTE (shown when a row has one) says ' +
      '"idle 5m" for a RUNNING job silent for over a minute (or --idle DUR), or why a job is CANCELLED, ' +
      'DEAD or FAILED before it ran (the record\'s "reason"); CMD is cut to the terminal\'s width ' +
      '($COLUMNS when stdout is not a terminal; no limit when unknown). No colour.',
    'Every record carries "log_bytes" and "last_output_at": the size and last write (mtime) of its log, ' +
      'read when printed (null when there is no log; last_output_at is null while the log is empty). ' +
      '--idle DUR lists only the RUNNING jobs silent that long: nothing in their log for DUR, or nothing ' +
      'at all since they started DUR ago.',
    'Without names it lists every job and never reads stdin (a caller\'s stdin may be a pipe that never ' +
      'closes); "-" as the only name reads names from NDJSON records on stdin, and an empty stdin ' +
      'selects nothing. A queued job whose predecessors have all ended is started or cancelled on the ' +
      'way; one whose lock is stuck is listed but not advanced (a note on stderr).',
    'Each run of a name has its own id. NAME@ID lists that one run: the current run if its id matches, ' +
      'else the kept record of a run it replaced (history/<name>@<id>.json); a record read on stdin ' +
      'selects the run its "id" names. --history lists the kept past runs of the selected names too ' +
      '(of every name without names), all runs together sorted by created_at, oldest first. History ' +
      'is never read without --history or NAME@ID.',
  ],
  operands: 'jobs',
  options: [
    { flag: 'status', arg: 'S1,S2', values: 'states', commaList: true, help: 'only jobs in these states (any case)' },
    { flag: 'history', help: 'list past runs (replaced by a rerun) too, oldest first' },
    { flag: 'idle', arg: 'DUR', help: 'only RUNNING jobs whose log has been silent for at least DUR' },
    { flag: 'json', help: 'print NDJSON records, also on a terminal' },
    { flag: 'table', help: 'print the table, also into a pipe' },
    HOST_OPTION,
  ],
  exit: [
    { code: '0', meaning: 'listed (also when there are no jobs)' },
    { code: '1', meaning: 'a record file is corrupt: named on stderr, every other job is still listed' },
    { code: '2', meaning: 'usage error' },
    { code: '3', meaning: 'a named job (or glob, or NAME@ID) matches nothing' },
    HOST_EXIT,
  ],
  examples: [
    { command: 'bgmon-status' },
    { command: 'bgmon-status \'stage_*\' --status FAILED,DEAD --json | jq -r .name' },
    { command: 'bgmon-status --history build --json | jq -r \'[.id, .status] | @tsv\'', comment: 'every run of build' },
    { command: 'bgmon-status --idle 30m --json | bgmon-stop', comment: 'stop what has hung' },
  ],
};
