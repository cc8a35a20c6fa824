import { commands, commandSpec, requestedHosts, runOnHosts, formatRecords, homeFromEnv, jobStatuses, lastString, out, outputMode, parseStatusFilter, requestedPatterns, runCommand, warn, followJobs, NotFoundError, checkFollowFlags, withResources, resourceColumns } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.status, version), async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-status', hosts, args);
  const filter = parseStatusFilter(lastString(args.status));
  checkFollowFlags(args);
  const { patterns, fromStdin } = await requestedPatterns(args._, false);
  const home = homeFromEnv();
  // `-` with an empty stdin selects nothing (it is not "no names": that would list every job)
  if (fromStdin && patterns.length === 0) {
    if (args['until-done']) throw new NotFoundError('nothing to follow: no records on stdin');
    out(formatRecords([], outputMode(args)));
    return 0;
  }
  if (args.follow) return followJobs(home, patterns, { untilDone: args['until-done'], filter, warn: (m) => warn('bgmon-status', m) });
  const { records, corrupt, notes } = await jobStatuses(home, patterns);
  const shown = filter ? records.filter((r) => filter.has(r.status)) : records;
  const mode = outputMode(args);
  if (args.resources) {
    const rich = withResources(home, shown);
    out(mode === 'json' ? formatRecords(rich, mode) : resourceColumns(formatRecords(shown, mode), rich));
  } else out(formatRecords(shown, mode));
  for (const line of notes) warn('bgmon-status', line);
  for (const err of corrupt) warn('bgmon-status', err.message);
  return corrupt.length > 0 ? 1 : 0;
});
