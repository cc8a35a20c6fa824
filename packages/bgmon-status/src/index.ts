import {
  checkFollowFlags,
  followJobs,
  formatRecords,
  homeFromEnv,
  jobStatuses,
  NotFoundError,
  outputMode,
  parseStatusFilter,
  RESOURCE_COLUMNS,
  statusView,
  withResources,
} from 'bgmon-state';
import { commands, lastString, out, requestedPatterns, runHostedCommand, warn } from 'bgmon-state/cli';
import { version } from '../package.json';

runHostedCommand(commands.status, version, async (args) => {
  const view = statusView(lastString(args.status), lastString(args.idle));
  checkFollowFlags(args);
  const { patterns, fromStdin } = await requestedPatterns(args._, false);
  const home = homeFromEnv();
  // `-` with an empty stdin selects nothing (it is not "no names": that would list every job)
  if (fromStdin && patterns.length === 0) {
    if (args['until-done']) throw new NotFoundError('nothing to follow: no records on stdin');
    out(formatRecords([], outputMode(args)));
    return 0;
  }
  if (args.follow) {
    const filter = parseStatusFilter(lastString(args.status));
    return followJobs(home, patterns, { untilDone: args['until-done'], filter, warn: (m) => warn('bgmon-status', m) });
  }
  const { records, corrupt, notes } = await jobStatuses(home, patterns, Boolean(args.history));
  const shown = records.filter(view.keep);
  const mode = outputMode(args);
  const listed = args.resources ? withResources(home, shown) : shown;
  out(formatRecords(listed, mode, args.resources ? { ...view.table, columns: RESOURCE_COLUMNS } : view.table));
  for (const line of notes) warn('bgmon-status', line);
  for (const err of corrupt) warn('bgmon-status', err.message);
  return corrupt.length > 0 ? 1 : 0;
});
