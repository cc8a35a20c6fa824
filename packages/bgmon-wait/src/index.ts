import { commands, commandSpec, requestedHosts, runOnHosts, homeFromEnv, lastString, matchTargets, ndjson, out, parseDuration, requestedPatterns, runCommand, waitForJobs } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.wait, version), async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-wait', hosts, args);
  const timeout = lastString(args.timeout);
  const timeoutMs = timeout === undefined ? null : parseDuration(timeout, '--timeout');
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const { records, code } = await waitForJobs(home, matchTargets(home, patterns), { timeoutMs, any: Boolean(args.any) });
  out(ndjson(records));
  return code;
});
