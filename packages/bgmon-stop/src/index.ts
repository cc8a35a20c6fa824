import {
  homeFromEnv,
  matchTargets,
  splitTargets,
  ndjson,
  parseDuration,
  parseSignal,
  stopJobs,
  UsageError,
} from 'bgmon-state';
import { commands, lastString, out, requestedPatterns, runHostedCommand, warn } from 'bgmon-state/cli';
import { version } from '../package.json';

runHostedCommand(commands.stop, version, async (args) => {
  const sigText = lastString(args.signal) ?? 'TERM';
  const signal = parseSignal(sigText);
  if (signal === null) throw new UsageError(`--signal: unknown signal ${JSON.stringify(sigText)}`);
  const graceMs = parseDuration(lastString(args.grace) ?? '10s', '--grace');
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  // a past run (NAME@ID of a replaced run) has ended: stopping it changes nothing
  const { names, past } = splitTargets(home, matchTargets(home, patterns));
  const { records, refusals } = await stopJobs(home, names, { signal, graceMs });
  out(ndjson([...records, ...past]));
  for (const line of refusals) warn('bgmon-stop', line);
  return refusals.length > 0 ? 1 : 0;
});
