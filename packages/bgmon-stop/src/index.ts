import { requestedHosts, runOnHosts, homeFromEnv, lastString, matchNames, ndjson, out, parseDuration, parseSignal, requestedPatterns, runCommand, stopJobs, UsageError, warn } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-stop NAME|GLOB... [--signal SIG] [--grace DUR] [--host H1,H2]

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
  --host H1,H2  stop on each host over ssh ($BGMON_SSH, default ssh), records tagged with
                "host"; default $BGMON_HOSTS; empty: this machine. Stdin records go to their host
  -h, --help    this help;  --version  the version

Exit: 0 every job ended (or had already ended: nothing changed); 1 a job was STALE, is not
provably a bgmon job, could not be signalled (EPERM) or did not end, or its stop could not be
recorded (the reason is on stderr); 2 usage error (malformed stdin: nothing is stopped);
3 no such job; 130, 143, 129 interrupted by INT, TERM, HUP. With --host: 1 also when a host could
not answer (one line on stderr: "host H: reason"); 2 or 3 when every host said so.

Examples:
  bgmon-stop train
  bgmon-stop 'crawl_*' --signal INT --grace 30s
  bgmon-status --status RUNNING --json | bgmon-stop
  bgmon-status --host gpu1,gpu2 --status RUNNING --json | bgmon-stop --host gpu1,gpu2
`;

runCommand({ name: 'bgmon-stop', version, usage, strings: ['signal', 'grace', 'host'] }, async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-stop', hosts, args);
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
