import { DURATION_FORMS } from '../duration';
import { HOST_EXIT, HOST_OPTION, READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const stop: CommandDoc = {
  name: 'bgmon-stop',
  summary: "stop a job's whole process tree: signal, grace, then SIGKILL",
  synopsis: ['bgmon-stop NAME|GLOB|NAME@ID... [--signal SIG] [--grace DUR] [--host H1,H2]'],
  description: [
    "Sends SIG to each job's whole process group and to every process it started that left the group " +
      '(found by the BGMON_JOB_ID marker in its environment); after the grace period sends SIGKILL to ' +
      'whatever remains; returns as soon as the job is gone and prints the final records (STOPPED). ' +
      'A QUEUED job becomes STOPPED without ever running; a job that has already ended is printed ' +
      'unchanged.',
    "Never signals a STALE job, pid 0 or 1, the job's supervisor, or a pid that does not lead its own " +
      "process group and session and carry the job's marker. Interrupted (Ctrl-C, TERM, HUP), it " +
      "records no stop for a job that is still running, so the job's own later end is what its " +
      'record says.',
    READS_STDIN,
  ],
  operands: 'jobs',
  options: [
    {
      flag: 'signal',
      arg: 'SIG',
      values: 'signals',
      help: 'the signal: a name with or without SIG, any case, or a number 1-64',
      default: 'TERM',
    },
    { flag: 'grace', arg: 'DUR', help: `SIGKILL what remains after DUR: ${DURATION_FORMS}`, default: '10s' },
    HOST_OPTION,
  ],
  exit: [
    { code: '0', meaning: 'every job ended (or had already ended: nothing changed)' },
    {
      code: '1',
      meaning:
        'a job was STALE, is not provably a bgmon job, could not be signalled (EPERM) or did not end, or its stop ' +
        'could not be recorded (the reason is on stderr); the other jobs are still stopped',
    },
    { code: '2', meaning: 'usage error: unknown signal, bad duration, malformed stdin (nothing is stopped)' },
    { code: '3', meaning: 'a name or glob matches no job (nothing is stopped)' },
    { code: '129, 130, 143', meaning: 'interrupted by HUP, INT, TERM' },
    HOST_EXIT,
  ],
  examples: [
    { command: 'bgmon-stop train' },
    { command: "bgmon-stop 'crawl_*' --signal INT --grace 30s" },
    { command: 'bgmon-status --status RUNNING --json | bgmon-stop', comment: 'safe when nothing runs' },
  ],
};
