import { HOST_EXIT, HOST_OPTION, READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const tail: CommandDoc = {
  name: 'bgmon-tail',
  summary: "print or follow (-f) the end of jobs' logs",
  synopsis: ['bgmon-tail NAME|GLOB|NAME@ID... [-n N] [-f] [--json] [--since ID:OFFSET] [--max-bytes N] [--host H1,H2]'],
  description: [
    "Prints the last N lines of each job's log, read from the file's end (as cheap on a multi-GB log " +
      'as on a small one). -f follows new output as it is written and exits once every followed job ' +
      'has ended, after printing everything its log holds; it copes with the log being truncated or ' +
      'replaced by a rerun, and follows the file a running job writes to even when it is moved away ' +
      '(rotated), as tail -f does. With several jobs each line is prefixed "name | ".',
    "Memory stays flat whatever the lines' lengths. With one job and no --json the log's bytes are " +
      'copied as they are (with -f, an unfinished line shows at once); a last line without a newline ' +
      'gets one. With --json or several jobs, a line longer than 1 MiB is printed as several records ' +
      '(or "name | " lines) of at most 1 MiB each, cut between UTF-8 characters.',
    'Reading a log in steps: every --json line carries the run\'s "id" and the byte "offset" just past ' +
      'that line in its log (past its newline; a line printed without one, an unfinished last line or a ' +
      'piece of a long line, also has "partial": true). ID:OFFSET is a cursor: --since ID:OFFSET prints ' +
      'exactly the bytes written after it, none twice, none skipped, also from the middle of a line. ' +
      "When ID is not the job's current run (it was rerun), or the log is now shorter than OFFSET " +
      '(truncated), one line on stderr says so and the whole current log is printed. The log is read ' +
      'from OFFSET on (seeking, never from its start). A truncated log that regrew past OFFSET before ' +
      'the call is not noticed, as with tail -f.',
    '--max-bytes N keeps the newest whole lines whose log bytes (before any JSON framing) add up to at ' +
      'most N, and says on stderr how many bytes were left out (with the cursor where the output ends, ' +
      'so a call that printed nothing can skip on). With several jobs the budget is shared evenly. -n ' +
      'and --max-bytes both apply: the newest N lines, then cut to N bytes. With -f they cap what is ' +
      'printed before following starts.',
    READS_STDIN,
  ],
  operands: 'jobs',
  options: [
    { flag: 'n', arg: 'N', help: 'number of lines (with --since: every line after the cursor)', default: '10' },
    { flag: 'follow', alias: 'f', help: 'follow until every job has ended' },
    { flag: 'json', help: 'print {"name","id","line","offset"} records instead of raw lines' },
    { flag: 'since', arg: 'ID:OFFSET', help: 'only what was written after this cursor (one job)' },
    { flag: 'max-bytes', arg: 'N', help: 'print at most N log bytes, the newest whole lines (N, NK, NM or NG)' },
    HOST_OPTION,
  ],
  exit: [
    { code: '0', meaning: 'printed' },
    { code: '1', meaning: 'a job that has run has no log to read (deleted, or not a regular file): said on stderr' },
    { code: '2', meaning: 'usage error (a malformed cursor, --since with several jobs)' },
    { code: '3', meaning: 'a name or glob matches no job' },
    HOST_EXIT,
  ],
  examples: [
    { command: 'bgmon-tail train -n 50' },
    { command: "bgmon-tail -f 'shard_*'" },
    { command: 'bgmon-status --status FAILED --json | bgmon-tail -n 5', comment: 'why did they fail?' },
    { command: 'c=$(bgmon-status --json api | jq -r \'.id + ":0"\')', comment: "the start of api's current run" },
    { command: 'bgmon-tail --json --since "$c" --max-bytes 4K api > new.ndjson' },
    { command: 'c=$(tail -n 1 new.ndjson | jq -r \'"\\(.id):\\(.offset)"\')', comment: 'go on from there next time' },
  ],
};
