import { homeFromEnv, matchTargets, ndjson, parseDuration, parseLineRegex, waitForJobs } from 'bgmon-state';
import { commands, lastString, out, requestedPatterns, runHostedCommand } from 'bgmon-state/cli';
import { version } from '../package.json';

runHostedCommand(commands.wait, version, async (args) => {
  const timeout = lastString(args.timeout);
  const timeoutMs = timeout === undefined ? null : parseDuration(timeout, '--timeout');
  const idle = lastString(args.idle);
  const until = lastString(args.until);
  const watch = {
    idleMs: idle === undefined ? null : parseDuration(idle, '--idle'),
    until: until === undefined ? null : parseLineRegex(until, '--until'),
  };
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const { records, code, match } = await waitForJobs(home, matchTargets(home, patterns), {
    timeoutMs,
    any: Boolean(args.any),
    ...watch,
  });
  out(ndjson(match ? [match] : records));
  return code;
});
