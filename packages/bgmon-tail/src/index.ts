import { commands, commandSpec, followLogs, homeFromEnv, lastString, matchNames, printLastLines, requestedPatterns, runCommand, tailOutput, UsageError } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.tail, version), async (args) => {
  const nText = lastString(args.n) ?? '10';
  if (!/^\d+$/.test(nText) || Number(nText) > 1e9) throw new UsageError(`-n: expected a whole number of lines, got ${JSON.stringify(nText)}`);
  const n = Number(nText);
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const names = matchNames(home, patterns);
  const sink = tailOutput(names.length > 1, Boolean(args.json));
  if (args.follow) {
    await followLogs(home, names, n, sink);
    return;
  }
  for (const name of names) printLastLines(home, name, n, sink);
});
