import { homeFromEnv, matchTargets, splitTargets, ndjson, parseSignal, signalJobs, UsageError } from 'bgmon-state';
import { commands, commandSpec, out, requestedPatterns, runCommand, warn } from 'bgmon-state/cli';
import { version } from '../package.json';

runCommand(commandSpec(commands.signal, version), async (args) => {
  const words: string[] = args._;
  const sigText = words.at(-1);
  if (sigText === undefined) throw new UsageError('missing SIG: bgmon-signal NAME|GLOB... SIG (see --help)');
  const signal = parseSignal(sigText);
  if (signal === null) {
    throw new UsageError(`unknown signal ${JSON.stringify(sigText)} (the last argument is the signal)`);
  }
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(words.slice(0, -1), true);
  const { names, past } = splitTargets(home, matchTargets(home, patterns));
  const { records, refusals } = await signalJobs(home, names, signal);
  // a past run (NAME@ID of a replaced run) has ended, as an ended job: refused, nothing sent
  for (const r of past)
    refusals.push(`run ${r.name}@${r.id} is ${r.status}: a job that has ended cannot be signalled; nothing sent`);
  out(ndjson([...records, ...past]));
  for (const line of refusals) warn('bgmon-signal', line);
  return refusals.length > 0 ? 1 : 0;
});
