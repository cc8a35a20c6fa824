import { DURATION_FORMS } from '../duration';
import { HOST_EXIT, HOST_OPTION, READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const wait: CommandDoc = {
  name: 'bgmon-wait',
  summary: 'wait for jobs to end; exit with their exit code',
  synopsis: ['bgmon-wait NAME|GLOB|NAME@ID... [--timeout DUR] [--any] [--host H1,H2]'],
  description: [
    'Blocks until the jobs have ended (with --any: until one has), then prints the records of the ' +
      'ended ones; on --timeout it prints every record as it stands. Reacts to an end at once (file ' +
      'events on the state directory) and notices a job that died without a trace (DEAD).',
    READS_STDIN.replace('an empty stdin is an empty selection.', 'an empty selection is exit 3: waiting for nothing is not a success.'),
  ],
  operands: 'jobs',
  options: [
    { flag: 'timeout', arg: 'DUR', help: `give up after DUR (${DURATION_FORMS}), print every record and exit 124` },
    { flag: 'any', help: 'return when the first job ends' },
    HOST_OPTION,
  ],
  exit: [
    { code: 'one job', meaning: 'its own exit code; 128+n when signal n ended it; 1 for DEAD, STALE, STOPPED, CANCELLED' },
    { code: 'several', meaning: '0 if all SUCCEEDED, else 1 (with --any, the same rule over the jobs that ended)' },
    { code: '124', meaning: '--timeout expired' },
    { code: '2', meaning: 'usage error' },
    { code: '3', meaning: 'a name or glob matches no job, nothing was selected (empty stdin), or a job was removed while waited for' },
    HOST_EXIT,
  ],
  examples: [
    { command: 'bgmon-wait fetch && bgmon-start --name build -- make' },
    { command: 'bgmon-wait \'shard_*\' --timeout 2h' },
  ],
};
