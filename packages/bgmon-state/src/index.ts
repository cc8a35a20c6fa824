/*
 * bgmon-state: the one library every bgmon command is built on. Its public surface is this list;
 * what only the command-line entries need (argument parsing, --help, man pages, --host) is
 * bgmon-state/cli (cli-api.ts).
 */
export { currentState } from './classify';
export { parseDuration } from './duration';
export { BgmonError, ExecError, NotFoundError, StateError, UsageError } from './errors';
export { isValidName, nameMatcher } from './names';
export { age, commandLine, cut, formatRecords, ndjson, outputMode, shortTime, span, table } from './output';
export { type Home, homeFromEnv } from './paths';
export {
  bootId,
  environHas,
  isPaused,
  isSameProcess,
  listPids,
  maskHas,
  parseSignal,
  readStat,
  signalMasks,
  signalName,
  signalNames,
} from './proc';
export { enqueue } from './queue';
export { parseSlots } from './queue-slots';
export { readSpecsInput, startJobs } from './jobspec';
export {
  type ActionResult,
  type AttemptRecord,
  CorruptRecordError,
  gathered,
  isTerminal,
  type JobRecord,
  listNames,
  newRunId,
  nowIso,
  rawLine,
  readRecord,
  readRecordFile,
  type RetrySettings,
  type Status,
  STATUSES,
  writeRecord,
} from './record';
export { againOptions, startJob, type StartOptions } from './start';
export { jobStatuses, parseStatusFilter, statusView } from './status';
export { checkFollowFlags, followJobs } from './events';
export { RESOURCE_COLUMNS, withResources } from './resources';
export { stopJobs, type StopOptions } from './stop';
export { followLogs, lastLines, parseCursor, printKeptLogs, printTail, type TailOptions, tailOutput } from './tail';
export { waitForJobs, type WaitOptions, type WaitResult } from './wait';
export { parseLineRegex } from './log-match';
export { removeJobs, type RmOptions } from './rm';
export { signalJobs } from './signal';
export type { RunEnd } from './end';
export { type Listing, loadRecords, matchTargets, namesWithHistory, splitTargets, type Target } from './select';
export { wasStopped } from './stop-marker';
export { notBefore } from './delay';
