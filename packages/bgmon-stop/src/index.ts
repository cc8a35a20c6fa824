import { homeFromEnv, lastString, matchNames, ndjson, out, parseDuration, parseSignal, requestedPatterns, runCommand, stopJobs, UsageError, warn } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-stop NAME|GLOB... [--signal SIG] [--grace DUR]

Sends SIG (default TERM) to each job's whole process group and to every process it started
that left the group (found by the BGMON_JOB_ID marker in its environment); after the grace
period sends SIGKILL to whatever remains; returns as soon as the job is gone and prints the
final records (STOPPED). A QUEUED job becomes STOPPED without ever running. Never signals a
STALE job, pid 0 or 1, the job's supervisor, or a pid that does not lead its own process group
and session and carry the job's marker. Without names, reads NDJSON records from stdin (when
it is not a terminal). Interrupted (Ctrl-C, TERM, HUP), it records no stop for a job that is
still running, so the job's own later end is what its record says.

Options:
  --signal SIG  TERM, SIGINT, hup, 9 ... (default TERM)
  --grace DUR   500ms, 10s, 5m, 2h or seconds (default 10s)
  -h, --help    this help;  --version  the version

Exit: 0 every job ended (or had already ended: nothing changed); 1 a job was STALE, is not
provably a bgmon job, could not be signalled (EPERM) or did not end, or its stop could not be
recorded (the reason is on stderr); 2 usage error (malformed stdin: nothing is stopped);
3 no such job; 130, 143, 129 interrupted by INT, TERM, HUP.

Examples:
  bgmon-stop train
  bgmon-stop 'crawl_*' --signal INT --grace 30s
  bgmon-status --status RUNNING --json | bgmon-stop
`;

runCommand({ name: 'bgmon-stop', version, usage, strings: ['signal', 'grace'] }, async (args) => {
  const sigText = lastString(args.signal) ?? 'TERM';
  const signal = parseSignal(sigText);
  if (signal === null) throw new UsageError(`--signal: unknown signal ${JSON.stringify(sigText)}`);
  const graceMs = parseDuration(lastString(args.grace) ?? '10s', '--grace');
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const { records, refusals } = await stopJobs(home, matchNames(home, patterns), { signal, graceMs });
  out(ndjson(records));
  for (const line of refusals) warn('bgmon-stop', line);
  return refusals.length > 0 ? 1 : 0;
});
