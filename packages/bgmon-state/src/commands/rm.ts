import { DURATION_FORMS } from '../duration';
import { READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const rm: CommandDoc = {
  name: 'bgmon-rm',
  summary: 'remove the records and logs of ended jobs',
  synopsis: [
    'bgmon-rm NAME|GLOB|NAME@ID... [--stop [--grace DUR]]',
    'bgmon-rm --finished [NAME|GLOB...] [--older-than DUR]',
  ],
  description: [
    'Removes the records and logs (the current one and those kept from earlier runs) and the markers ' +
      'of jobs that have ended, and prints the removed records. A QUEUED or RUNNING job is refused ' +
      "unless --stop stops it first (as bgmon-stop does, never a STALE job's pid). --finished selects " +
      'every ended job (or every ended one among the names) and skips live ones silently. An ended ' +
      'job that a QUEUED job still waits for is kept (said on stderr), so the dependent can read its ' +
      'outcome. A corrupt record named (or matched by a glob) is removed with its logs (said on ' +
      'stderr); --finished skips corrupt records with a note.',
    'A name is removed with every past run kept for it (history/<name>@<id>.json, its log and its ' +
      '--env values), and their records are printed before its own. NAME@ID of a past run removes only that run; of the current run, the name. ' +
      '--finished also prunes past runs that ended at least --older-than ago (all without it), even ' +
      'of names whose current run is live; a past run a QUEUED job waits for is kept.',
    READS_STDIN.replace('Without names,', 'Without names and without --finished,'),
  ],
  operands: 'jobs',
  options: [
    { flag: 'finished', help: 'every job in a terminal state' },
    {
      flag: 'older-than',
      arg: 'DUR',
      help:
        `with --finished: only jobs that ended at least DUR ago (${DURATION_FORMS}); ` +
        'a job with no end time counts from its start',
    },
    { flag: 'stop', help: "stop QUEUED and RUNNING jobs first (never a STALE one's pid)" },
    { flag: 'grace', arg: 'DUR', help: 'with --stop: SIGKILL what remains after DUR', default: '10s' },
  ],
  exit: [
    { code: '0', meaning: 'removed (or nothing to remove)' },
    {
      code: '1',
      meaning:
        'a job was QUEUED or RUNNING, or is named but still waited for by a queued job: refused, named on stderr; ' +
        'the others are removed',
    },
    { code: '2', meaning: 'usage error (--older-than without --finished, bad duration, malformed stdin)' },
    { code: '3', meaning: 'a name or glob matches no job' },
  ],
  examples: [
    { command: 'bgmon-rm --finished --older-than 7d', comment: 'ended jobs and past runs older than a week' },
    { command: "bgmon-rm 'tmp_*' --stop" },
    { command: 'bgmon-status --status FAILED --json | bgmon-rm' },
  ],
};
