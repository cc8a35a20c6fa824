import { DURATION_FORMS } from '../duration';
import { HOST_EXIT, HOST_OPTION, READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const wait: CommandDoc = {
  name: 'bgmon-wait',
  summary: 'wait for jobs to end; exit with their exit code',
  synopsis: [
    'bgmon-wait NAME|GLOB|NAME@ID... [--timeout DUR] [--any] [--idle DUR] [--host H1,H2]',
    'bgmon-wait --until REGEX NAME [--timeout DUR] [--idle DUR]',
  ],
  description: [
    'Blocks until the jobs have ended (with --any: until one has), then prints the records of the ' +
      'ended ones; on --timeout it prints every record as it stands. Reacts to an end at once (file ' +
      'events on the state directory) and notices a job that died without a trace (DEAD).',
    "--until REGEX waits for readiness: it reads the job's current run's log from its start, then " +
      'each new write as it lands (file events on the log directory, within milliseconds), and returns ' +
      '0 at the first line that matches, printing it as bgmon-tail --json does: a JSON object with ' +
      '"name", "id", "line" and "offset" (just past the line). REGEX is a JavaScript regular expression matched ' +
      'anywhere in the line (anchor it with ^ and $); a line longer than 1 MiB is matched on its first ' +
      '1 MiB. A line counts once its newline is written; the last line without one counts when the run ' +
      'ends. If the run ends first, its own exit code (128+n for signal n), or 1 when it succeeded ' +
      'without printing the line. One job only; a rerun of the name meanwhile does not count.',
    '--idle DUR returns as soon as a RUNNING job has written nothing to its log for DUR (since its last ' +
      "output, or since it started when it has printed nothing), printing that job's record, with " +
      "exit 125; the ends are still waited for as without it. Its log's size and last write are in " +
      'the records as "log_bytes" and "last_output_at".',
    READS_STDIN.replace(
      'an empty stdin is an empty selection.',
      'an empty selection is exit 3: waiting for nothing is not a success.',
    ),
  ],
  operands: 'jobs',
  options: [
    { flag: 'timeout', arg: 'DUR', help: `give up after DUR (${DURATION_FORMS}), print every record and exit 124` },
    { flag: 'any', help: 'return when the first job ends' },
    {
      flag: 'until',
      arg: 'REGEX',
      help: "return 0 at the first line of the job's log that matches REGEX, printing it (one job)",
    },
    { flag: 'idle', arg: 'DUR', help: 'return (exit 125) when a RUNNING job has printed nothing for DUR' },
    HOST_OPTION,
  ],
  exit: [
    {
      code: 'one job',
      meaning: 'its own exit code; 128+n when signal n ended it; 1 for DEAD, STALE, STOPPED, CANCELLED',
    },
    { code: 'several', meaning: '0 if all SUCCEEDED, else 1 (with --any, the same rule over the jobs that ended)' },
    { code: '0 (--until)', meaning: 'a line matched; 1 when the run succeeded without it, else as for one job' },
    { code: '124', meaning: '--timeout expired' },
    {
      code: '125',
      meaning:
        "--idle: a RUNNING job has been silent for DUR (its record is printed; tell it from a job's own 125 by its " +
        'status)',
    },
    { code: '2', meaning: 'usage error (also a bad REGEX, or --until with more than one job)' },
    {
      code: '3',
      meaning:
        'a name or glob matches no job, nothing was selected (empty stdin), or a job was removed while waited for',
    },
    HOST_EXIT,
  ],
  examples: [
    { command: 'bgmon-wait fetch && bgmon-start --name build -- make' },
    { command: "bgmon-wait 'shard_*' --timeout 2h" },
    { command: 'bgmon-start --name api -- npm run serve' },
    {
      command: "bgmon-wait --until 'listening on' --timeout 60s api && npm test",
      comment: 'test once the server is up',
    },
    { command: 'bgmon-wait --idle 10m train || bgmon-tail -n 20 train', comment: 'has it hung?' },
  ],
};
