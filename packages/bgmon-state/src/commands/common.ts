import type { FileSpec, OptionSpec } from './types';

/** Every command takes these two; the parser handles them before the command runs. */
export const STANDARD_OPTIONS: OptionSpec[] = [
  { flag: 'help', alias: 'h', help: 'print this help and exit' },
  { flag: 'version', help: 'print the version and exit' },
];

export const READS_STDIN =
  'Without names, and with a stdin that is not a terminal, reads NDJSON records (one per line) from stdin ' +
  'and acts on the run each names: its "id" when it has one (even after the name was rerun), else the ' +
  'name\'s current run; "-" as the only name reads stdin always. NAME@ID names one run (the current one if ' +
  'its id matches, else the kept record of a past run; a past run has ended). A malformed line is a usage error ' +
  'and nothing is acted on; an empty stdin is an empty selection.';

/** --host: the same command on several machines over ssh (hosts.ts). */
export const HOST_OPTION: OptionSpec = {
  flag: 'host',
  arg: 'H1,H2',
  help:
    'run on each host over ssh ($BGMON_SSH, default ssh) in parallel, records tagged with "host"; ' +
    'default $BGMON_HOSTS; empty: this machine. Stdin records go to their host',
};

export const HOST_EXIT = {
  code: '--host',
  meaning:
    "the same codes over every host's answers together; 1 also when a host could not answer or " +
    'lacked the job (one line on stderr: "host H: reason"); 2 or 3 only when every host said so',
};

export const ENVIRONMENT: FileSpec[] = [
  {
    path: 'BGMON_HOME',
    meaning:
      'where bgmon keeps its state (default ~/.bgmon). Created 0700; refused when it belongs to another user or ' +
      'others can write to it.',
  },
  {
    path: 'BGMON_HOSTS',
    meaning:
      'H1,H2: the hosts status, stop, tail and wait run on over ssh when --host is not given (empty: this machine).',
  },
  {
    path: 'BGMON_SSH',
    meaning:
      'the transport for --host (default ssh), split on spaces: e.g. "ssh -o BatchMode=yes -o ConnectTimeout=5".',
  },
  {
    path: 'BGMON_JOB, BGMON_JOB_ID',
    meaning:
      "set in every job's environment: its name and its run id (the run id also marks the job's processes for " +
      'bgmon-stop).',
  },
];

/** The files users see and may script against; docs/interface.md describes the rest. */
export const FILES: FileSpec[] = [
  {
    path: '$BGMON_HOME/jobs/<name>.json',
    meaning: "the job's record: one JSON object on one line, replaced atomically.",
  },
  { path: '$BGMON_HOME/logs/<name>.log', meaning: "the job's stdout and stderr, written by the job itself." },
  {
    path: '$BGMON_HOME/logs/<name>@<id>.log',
    meaning: "the log of an earlier run of that name (the record's previous_log).",
  },
  {
    path: '$BGMON_HOME/jobs/.<name>@<id>.end',
    meaning:
      "the run's end (its wait status), written by its supervisor and folded into the record by whoever reads it next.",
  },
  { path: '$BGMON_HOME/run/', meaning: 'locks, stop markers and queue files, held for as long as they matter.' },
];
