import { formatRecords, homeFromEnv, jobStatuses, lastString, out, outputMode, parseStatusFilter, requestedPatterns, runCommand, warn } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-status [NAME|GLOB...] [--status S1,S2] [--json|--table]

Prints every job (or the named ones), oldest first, with its state computed now from its
record and /proc: QUEUED RUNNING SUCCEEDED FAILED STOPPED CANCELLED DEAD STALE.
NDJSON records when stdout is not a terminal, a table (NAME STATUS PID AGE EXIT) on one.
Without names it never reads stdin; "-" reads names from NDJSON records on stdin (an empty
stdin selects nothing). A queued job whose lock is stuck is listed but not advanced (noted).

Options:
  --status S1,S2  only jobs in these states
  --json          force NDJSON records;  --table  force the table
  -h, --help      this help;  --version  the version

Exit: 0 listed; 1 a record file is corrupt (named on stderr; the rest are listed);
2 usage error; 3 a named job does not exist.

Examples:
  bgmon-status
  bgmon-status 'stage_*' --status FAILED,DEAD --json | jq -r .name
`;

runCommand({ name: 'bgmon-status', version, usage, strings: ['status'], booleans: ['json', 'table'] }, async (args) => {
  const filter = parseStatusFilter(lastString(args.status));
  const { patterns, fromStdin } = await requestedPatterns(args._, false);
  const home = homeFromEnv();
  // `-` with an empty stdin selects nothing (it is not "no names": that would list every job)
  if (fromStdin && patterns.length === 0) {
    out(formatRecords([], outputMode(args)));
    return 0;
  }
  const { records, corrupt, notes } = await jobStatuses(home, patterns);
  out(formatRecords(filter ? records.filter((r) => filter.has(r.status)) : records, outputMode(args)));
  for (const line of notes) warn('bgmon-status', line);
  for (const err of corrupt) warn('bgmon-status', err.message);
  return corrupt.length > 0 ? 1 : 0;
});
