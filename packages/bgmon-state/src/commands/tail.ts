import { READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const tail: CommandDoc = {
  name: 'bgmon-tail',
  summary: 'print or follow (-f) the end of jobs\' logs',
  synopsis: ['bgmon-tail NAME|GLOB... [-n N] [-f] [--json]'],
  description: [
    'Prints the last N lines of each job\'s log, read from the file\'s end (as cheap on a multi-GB log ' +
      'as on a small one). -f follows new output as it is written and exits once every followed job ' +
      'has ended, after printing everything its log holds; it copes with the log being truncated or ' +
      'replaced by a rerun. With several jobs each line is prefixed "name | ".',
    'Memory stays flat whatever the lines\' lengths. With one job and no --json the log\'s bytes are ' +
      'copied as they are (with -f, an unfinished line shows at once); a last line without a newline ' +
      'gets one. With --json or several jobs, a line longer than 1 MiB is printed as several records ' +
      '(or "name | " lines) of at most 1 MiB each, cut between UTF-8 characters.',
    READS_STDIN,
  ],
  operands: 'jobs',
  options: [
    { flag: 'n', arg: 'N', help: 'number of lines', default: '10' },
    { flag: 'follow', alias: 'f', help: 'follow until every job has ended' },
    { flag: 'json', help: 'print {"name","line"} records instead of raw lines' },
  ],
  exit: [
    { code: '0', meaning: 'printed' },
    { code: '2', meaning: 'usage error' },
    { code: '3', meaning: 'a name or glob matches no job' },
  ],
  examples: [
    { command: 'bgmon-tail train -n 50' },
    { command: 'bgmon-tail -f \'shard_*\'' },
    { command: 'bgmon-status --status FAILED --json | bgmon-tail -n 5', comment: 'why did they fail?' },
  ],
};
