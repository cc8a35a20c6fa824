import { homeFromEnv, lastString, listNames, matchNames, ndjson, out, parseDuration, removeJobs, requestedPatterns, runCommand, UsageError, warn } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-rm NAME|GLOB... [--stop [--grace DUR]]
       bgmon-rm --finished [NAME|GLOB...] [--older-than DUR]

Removes the records and logs (the current one and those kept from earlier runs) of jobs
that have ended, and prints the removed records. A QUEUED or RUNNING job is refused unless
--stop stops it first (as bgmon-stop does). --finished selects every ended job (or every
ended one among the names), skipping live ones and, with a note, corrupt records. A corrupt
record named (or matched by a glob) is removed with its logs (said on stderr). Without names and without --finished,
reads NDJSON records from stdin (when it is not a terminal).

Options:
  --finished        every job in a terminal state
  --older-than DUR  with --finished: only jobs that ended at least DUR ago (e.g. 7d is 168h)
  --stop            stop QUEUED/RUNNING jobs first (never a STALE one's pid)
  --grace DUR       with --stop: SIGKILL after DUR (default 10s)
  -h, --help        this help;  --version  the version

Exit: 0 removed (also when nothing was selected); 1 a job was QUEUED or RUNNING (refused, the others are removed);
2 usage error; 3 no such job.

Examples:
  bgmon-rm --finished --older-than 24h
  bgmon-rm 'tmp_*' --stop
  bgmon-status --status FAILED --json | bgmon-rm
`;

runCommand({ name: 'bgmon-rm', version, usage, strings: ['older-than', 'grace'], booleans: ['finished', 'stop'] }, async (args) => {
  const olderText = lastString(args['older-than']);
  if (olderText !== undefined && !args.finished) throw new UsageError('--older-than goes with --finished');
  const olderThanMs = olderText === undefined ? null : parseDuration(olderText, '--older-than');
  const graceMs = parseDuration(lastString(args.grace) ?? '10s', '--grace');
  const home = homeFromEnv();
  const fromArgsOnly = args.finished && args._.length === 0;
  const { patterns } = fromArgsOnly ? { patterns: [] } : await requestedPatterns(args._, true);
  const names = fromArgsOnly ? listNames(home) : matchNames(home, patterns);
  const { records, refusals, notes } = await removeJobs(home, names, {
    finished: Boolean(args.finished),
    olderThanMs,
    stop: args.stop ? { signal: 15, graceMs } : null,
  });
  out(ndjson(records));
  for (const line of [...notes, ...refusals]) warn('bgmon-rm', line);
  return refusals.length > 0 ? 1 : 0;
});
