import {
  homeFromEnv, matchNames, ndjson, out, parseSignal, requestedPatterns, runCommand, signalJobs, UsageError, warn,
} from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-signal NAME|GLOB... SIG
       bgmon-signal SIG < records.ndjson

Sends SIG once to each job's whole process group and to every process it started that left
the group (found by the BGMON_JOB_ID marker in its environment), exactly the processes
bgmon-stop would signal, without ending the job or marking it STOPPED. STOP and TSTP pause a
job: its status is PAUSED while its leader is stopped (TSTP, TTIN and TTOU reach a process
that leaves them at their default as STOP: the kernel drops them in a detached job's group);
CONT resumes it (RUNNING). Prints each job's record once the signal has taken effect. Never
signals a STALE job, a QUEUED or ended one, pid 0 or 1, the job's supervisor, or a pid that
does not lead its own process group and session and carry the job's marker. A signal that
ends the job (TERM, KILL...) ends it as FAILED: use bgmon-stop to stop it. The last argument
is the signal; without names, reads NDJSON records from stdin (when it is not a terminal).

Arguments:
  SIG           HUP, SIGUSR1, stop, cont, 10, RTMIN+2 ...

Options:
  -h, --help    this help;  --version  the version

Exit: 0 every job was signalled; 1 a job was STALE, QUEUED or had ended (nothing sent to it),
is not provably a bgmon job, or could not be signalled (EPERM) (the reason is on stderr);
2 usage error (malformed stdin: nothing is signalled); 3 no such job.

Examples:
  bgmon-signal web HUP
  bgmon-signal 'crawl_*' STOP
  bgmon-signal 'crawl_*' CONT
  bgmon-status --status RUNNING --json | bgmon-signal USR1
`;

runCommand({ name: 'bgmon-signal', version, usage }, async (args) => {
  const words: string[] = args._;
  const sigText = words.at(-1);
  if (sigText === undefined) throw new UsageError('missing SIG: bgmon-signal NAME|GLOB... SIG (see --help)');
  const signal = parseSignal(sigText);
  if (signal === null) {
    throw new UsageError(`unknown signal ${JSON.stringify(sigText)} (the last argument is the signal)`);
  }
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(words.slice(0, -1), true);
  const { records, refusals } = await signalJobs(home, matchNames(home, patterns), signal);
  out(ndjson(records));
  for (const line of refusals) warn('bgmon-signal', line);
  return refusals.length > 0 ? 1 : 0;
});
