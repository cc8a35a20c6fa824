import { requestedHosts, runOnHosts, formatRecords, homeFromEnv, jobStatuses, lastString, out, outputMode, parseStatusFilter, requestedPatterns, runCommand, warn } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-status [NAME|GLOB...] [--status S1,S2] [--json|--table] [--host H1,H2]

Prints every job (or the named ones), oldest first, with its state computed now from its
record and /proc: QUEUED RUNNING SUCCEEDED FAILED STOPPED CANCELLED DEAD STALE.
NDJSON records when stdout is not a terminal, a table (NAME STATUS PID AGE EXIT) on one.
Without names it never reads stdin; "-" reads names from NDJSON records on stdin.

Options:
  --status S1,S2  only jobs in these states
  --json          force NDJSON records;  --table  force the table
  --host H1,H2    run on each host over ssh ($BGMON_SSH, default ssh) in parallel, records
                  tagged with "host"; default $BGMON_HOSTS; empty: this machine
  -h, --help      this help;  --version  the version

Exit: 0 listed; 1 a record file is corrupt (named on stderr; the rest are listed);
2 usage error; 3 a named job does not exist. With --host: 1 also when a host could not answer
(one line on stderr: "host H: reason"); 2 or 3 when every host said so.

Examples:
  bgmon-status
  bgmon-status 'stage_*' --status FAILED,DEAD --json | jq -r .name
  BGMON_SSH="ssh -o BatchMode=yes" bgmon-status --host gpu1,gpu2 --status RUNNING
`;

runCommand({ name: 'bgmon-status', version, usage, strings: ['status', 'host'], booleans: ['json', 'table'] }, async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-status', hosts, args);
  const filter = parseStatusFilter(lastString(args.status));
  const { patterns } = await requestedPatterns(args._, false);
  const { records, corrupt } = await jobStatuses(homeFromEnv(), patterns);
  out(formatRecords(filter ? records.filter((r) => filter.has(r.status)) : records, outputMode(args)));
  for (const err of corrupt) warn('bgmon-status', err.message);
  return corrupt.length > 0 ? 1 : 0;
});
