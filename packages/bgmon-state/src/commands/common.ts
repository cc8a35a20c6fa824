import type { FileSpec, OptionSpec } from './types';

/** Every command takes these two; the parser handles them before the command runs. */
export const STANDARD_OPTIONS: OptionSpec[] = [
  { flag: 'help', alias: 'h', help: 'print this help and exit' },
  { flag: 'version', help: 'print the version and exit' },
];

export const READS_STDIN =
  'Without names, and with a stdin that is not a terminal, reads NDJSON records (one per line) from stdin ' +
  'and acts on their "name"s; "-" as the only name reads stdin always. A malformed line is a usage error ' +
  'and nothing is acted on; an empty stdin is an empty selection.';

export const ENVIRONMENT: FileSpec[] = [
  { path: 'BGMON_HOME', meaning: 'where bgmon keeps its state (default ~/.bgmon). Created 0700; refused when it belongs to another user or others can write to it.' },
  { path: 'BGMON_JOB, BGMON_JOB_ID', meaning: "set in every job's environment: its name and its run id (the run id also marks the job's processes for bgmon-stop)." },
];

/** The files users see and may script against; docs/interface.md describes the rest. */
export const FILES: FileSpec[] = [
  { path: '$BGMON_HOME/jobs/<name>.json', meaning: 'the job\'s record: one JSON object on one line, replaced atomically.' },
  { path: '$BGMON_HOME/logs/<name>.log', meaning: 'the job\'s stdout and stderr, written by the job itself.' },
  { path: '$BGMON_HOME/logs/<name>@<id>.log', meaning: 'the log of an earlier run of that name (the record\'s previous_log).' },
  { path: '$BGMON_HOME/jobs/.<name>@<id>.end', meaning: 'the run\'s end (its wait status), written by its supervisor and folded into the record by whoever reads it next.' },
  { path: '$BGMON_HOME/run/', meaning: 'locks, stop markers and queue files, held for as long as they matter.' },
];
