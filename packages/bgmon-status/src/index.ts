import { commands, commandSpec, requestedHosts, runOnHosts, formatRecords, homeFromEnv, jobStatuses, lastString, out, outputMode, requestedPatterns, runCommand, statusView, warn } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.status, version), async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-status', hosts, args);
  const view = statusView(lastString(args.status), lastString(args.idle));
  const { patterns, fromStdin } = await requestedPatterns(args._, false);
  const home = homeFromEnv();
  // `-` with an empty stdin selects nothing (it is not "no names": that would list every job)
  if (fromStdin && patterns.length === 0) {
    out(formatRecords([], outputMode(args)));
    return 0;
  }
  const { records, corrupt, notes } = await jobStatuses(home, patterns, Boolean(args.history));
  out(formatRecords(records.filter(view.keep), outputMode(args), view.table));
  for (const line of notes) warn('bgmon-status', line);
  for (const err of corrupt) warn('bgmon-status', err.message);
  return corrupt.length > 0 ? 1 : 0;
});
