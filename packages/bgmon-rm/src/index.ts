import { commands, commandSpec, homeFromEnv, lastString, listNames, matchNames, ndjson, out, parseDuration, removeJobs, requestedPatterns, runCommand, UsageError, warn } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.rm, version), async (args) => {
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
