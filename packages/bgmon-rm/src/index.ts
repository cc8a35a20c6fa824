import {
  homeFromEnv,
  matchTargets,
  namesWithHistory,
  splitTargets,
  ndjson,
  parseDuration,
  removeJobs,
  UsageError,
} from 'bgmon-state';
import { commands, commandSpec, lastString, out, requestedPatterns, runCommand, warn } from 'bgmon-state/cli';
import { version } from '../package.json';

runCommand(commandSpec(commands.rm, version), async (args) => {
  const olderText = lastString(args['older-than']);
  if (olderText !== undefined && !args.finished) throw new UsageError('--older-than goes with --finished');
  const olderThanMs = olderText === undefined ? null : parseDuration(olderText, '--older-than');
  const graceMs = parseDuration(lastString(args.grace) ?? '10s', '--grace');
  const home = homeFromEnv();
  const fromArgsOnly = args.finished && args._.length === 0;
  const { patterns } = fromArgsOnly ? { patterns: [] } : await requestedPatterns(args._, true);
  // --finished also prunes past runs: names with only past runs left count too
  const { names, past } = fromArgsOnly
    ? { names: namesWithHistory(home), past: [] }
    : splitTargets(home, matchTargets(home, patterns, args.finished ? namesWithHistory : undefined));
  const { records, refusals, notes } = await removeJobs(
    home,
    names,
    {
      finished: Boolean(args.finished),
      olderThanMs,
      stop: args.stop ? { signal: 15, graceMs } : null,
    },
    past,
  );
  out(ndjson(records));
  for (const line of [...notes, ...refusals]) warn('bgmon-rm', line);
  return refusals.length > 0 ? 1 : 0;
});
