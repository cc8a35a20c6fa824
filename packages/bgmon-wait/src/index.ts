import { requestedHosts, runOnHosts, homeFromEnv, lastString, matchNames, ndjson, out, parseDuration, requestedPatterns, runCommand, waitForJobs } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-wait NAME|GLOB... [--timeout DUR] [--any] [--host H1,H2]

Blocks until the jobs have ended (with --any: until one has), then prints the records of the
ended ones. Reacts to an end at once (file events on the state directory) and notices a job
that died without a trace (DEAD). Without names, reads NDJSON records from stdin (when it is
not a terminal).

Options:
  --timeout DUR  give up after DUR (500ms, 10s, 5m, 2h or seconds): prints every record, exit 124
  --any          return when the first job ends
  --host H1,H2   wait on each host over ssh ($BGMON_SSH, default ssh), records tagged with
                 "host"; default $BGMON_HOSTS; empty: this machine. Stdin records go to their host
  -h, --help     this help;  --version  the version

Exit: one job: its own exit code (128+n when signal n ended it; 1 for DEAD, STALE, STOPPED,
CANCELLED); several: 0 if all SUCCEEDED, else 1; 124 timeout; 2 usage error; 3 no such job
(or it was removed while waited for). With --host: the rule over every host's records together;
1 if a host could not answer or lacked the job (one line on stderr: "host H: reason"); 124 if
one timed out; 3 when no host has the job.

Examples:
  bgmon-wait fetch && bgmon-start --name build -- make
  bgmon-wait 'shard_*' --timeout 2h
  bgmon-wait --host gpu1,gpu2 'shard_*'
`;

runCommand({ name: 'bgmon-wait', version, usage, strings: ['timeout', 'host'], booleans: ['any'] }, async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-wait', hosts, args);
  const timeout = lastString(args.timeout);
  const timeoutMs = timeout === undefined ? null : parseDuration(timeout, '--timeout');
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const { records, code } = await waitForJobs(home, matchNames(home, patterns), { timeoutMs, any: Boolean(args.any) });
  out(ndjson(records));
  return code;
});
