import { commands, commandSpec, formatRecords, homeFromEnv, jobStatuses, lastString, out, outputMode, parseStatusFilter, requestedPatterns, runCommand, warn } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.status, version), async (args) => {
  const filter = parseStatusFilter(lastString(args.status));
  const { patterns } = await requestedPatterns(args._, false);
  const { records, corrupt } = await jobStatuses(homeFromEnv(), patterns);
  out(formatRecords(filter ? records.filter((r) => filter.has(r.status)) : records, outputMode(args)));
  for (const err of corrupt) warn('bgmon-status', err.message);
  return corrupt.length > 0 ? 1 : 0;
});
