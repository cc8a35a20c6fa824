import { READS_STDIN } from './common';
import type { CommandDoc } from './types';

export const signal: CommandDoc = {
  name: 'bgmon-signal',
  summary: 'send a signal to a job without ending it: HUP to reload, STOP/CONT to pause',
  synopsis: ['bgmon-signal NAME|GLOB... SIG', 'bgmon-signal SIG < records.ndjson'],
  description: [
    "Sends SIG once to each job's whole process group and to every process it started that left the " +
      'group (found by the BGMON_JOB_ID marker in its environment), exactly the processes bgmon-stop ' +
      'would signal, without ending the job or marking it STOPPED. The last argument is the signal: ' +
      'a name with or without SIG, any case, or a number 1-64 (HUP, SIGUSR1, stop, cont, 10, RTMIN+2).',
    'STOP and TSTP pause a job: its status is PAUSED while its leader is stopped (TSTP, TTIN and TTOU ' +
      'reach a process that leaves them at their default as STOP: the kernel drops them in a detached ' +
      "job's group); CONT resumes it (RUNNING). Prints each job's record once the signal has taken " +
      'effect. A signal that ends the job (TERM, KILL...) ends it as FAILED: use bgmon-stop to stop it.',
    "Never signals a STALE job, a QUEUED or ended one, pid 0 or 1, the job's supervisor, or a pid that " +
      "does not lead its own process group and session and carry the job's marker.",
    READS_STDIN,
  ],
  operands: 'jobs-then-signal',
  options: [],
  exit: [
    { code: '0', meaning: 'every job was signalled' },
    {
      code: '1',
      meaning:
        'a job was STALE, QUEUED or had ended (nothing sent to it), is not provably a bgmon job, or could not be ' +
        'signalled (EPERM); the reason is on stderr',
    },
    { code: '2', meaning: 'usage error: missing or unknown signal, malformed stdin (nothing is signalled)' },
    { code: '3', meaning: 'a name or glob matches no job (nothing is signalled)' },
  ],
  examples: [
    { command: 'bgmon-signal web HUP', comment: 'reload' },
    { command: "bgmon-signal 'crawl_*' STOP", comment: 'pause: PAUSED' },
    { command: "bgmon-signal 'crawl_*' CONT", comment: 'resume: RUNNING' },
    { command: 'bgmon-status --status RUNNING --json | bgmon-signal USR1' },
  ],
};
