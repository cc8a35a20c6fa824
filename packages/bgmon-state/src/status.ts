import { UsageError } from './errors';
import type { Home } from './paths';
import { STATUSES, type JobRecord } from './record';
import { foldIfFree } from './fold';
import { currentState } from './classify';
import {
  loadHistory,
  loadRecords,
  matchTargets,
  namesWithHistory,
  oldestFirst,
  splitTargets,
  type Listing,
} from './select';
import { advanceQueue } from './queue';
import { isReadyToLeaveQueue } from './queue-rules';
import { silentMs, withActivities } from './activity';

import { parseDuration } from './duration';
import type { TableOptions } from './output';

/** Without --idle, the table marks a RUNNING job "idle" once it has been silent this long. */
export const IDLE_MARK_MS = 60_000;

/** What bgmon-status shows: `--status` and `--idle` (both must hold) and how the table marks silence. */
export function statusView(
  status: string | undefined,
  idle: string | undefined,
): { keep: (r: JobRecord) => boolean; table: TableOptions } {
  const states = parseStatusFilter(status);
  const idleMs = idle === undefined ? null : parseDuration(idle, '--idle');
  const now = Date.now();
  // --idle DUR: the RUNNING jobs whose log has been silent (or that never wrote) for at least DUR
  const keep = (r: JobRecord) =>
    (!states || states.has(r.status)) && (idleMs === null || (silentMs(r, now) ?? -1) >= idleMs);
  return { keep, table: { idleMs: idleMs ?? IDLE_MARK_MS, now } };
}

/** Parses `--status RUNNING,failed` into a set of states. */
export function parseStatusFilter(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  const wanted = value
    .split(',')
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean);
  for (const s of wanted)
    if (!(STATUSES as readonly string[]).includes(s))
      throw new UsageError(`--status: unknown state ${JSON.stringify(s)} (one of ${STATUSES.join(', ')})`);
  if (wanted.length === 0) throw new UsageError('--status: give at least one state');
  return new Set(wanted);
}

/**
 * The current state of the named jobs (all when none are named), oldest first. A queued job
 * whose predecessors have all ended is started or cancelled on the way (see queue.ts).
 */
export async function jobStatuses(home: Home, patterns: string[], history = false): Promise<Listing> {
  const { names, past } = selectRuns(home, patterns, history);
  const now = await statusesOf(home, names);
  const listed = withPastRuns(home, now.records, past, history ? names : null);
  return { ...now, records: listed };
}

/** The current runs of existing names (every job when undefined), with their log activity. */
export async function statusesOf(home: Home, names: string[] | undefined): Promise<Listing> {
  let { records, corrupt } = loadRecords(home, names);
  let notes: string[] = [];
  if (records.some((r) => isReadyToLeaveQueue(home, r))) {
    notes = await advanceQueue(home);
    ({ records, corrupt } = loadRecords(home, names));
  }
  const current = records.map((r) => currentState(home, r));
  current.forEach((cur, i) => records[i].status === 'RUNNING' && foldIfFree(home, cur));
  // the log's size and last write, read now: no process keeps them
  return { records: withActivities(current, home.logs), corrupt, notes };
}

/** The names asked for (undefined: every job) and the past runs named as NAME@ID. */
function selectRuns(home: Home, patterns: string[], history: boolean): { names?: string[]; past: JobRecord[] } {
  if (patterns.length === 0) return { past: [] };
  // with --history a glob also matches names that only have past runs left
  return splitTargets(home, matchTargets(home, patterns, history ? namesWithHistory : undefined));
}

/**
 * Adds past runs to the current ones: those named as NAME@ID, and with --history (`names`
 * not null) every kept run of the names (all when undefined). History is read only when asked:
 * a plain bgmon-status never lists history/. All oldest first, by created_at.
 */
function withPastRuns(
  home: Home,
  current: JobRecord[],
  past: JobRecord[],
  names: string[] | undefined | null,
): JobRecord[] {
  if (past.length === 0 && names === null) return current;
  const seen = new Set(current.map((r) => `${r.name}@${r.id}`));
  const extra = [...past, ...(names === null ? [] : loadHistory(home, names))].filter((r) => {
    const key = `${r.name}@${r.id}`;
    return !seen.has(key) && Boolean(seen.add(key));
  });
  // a past run's log is its kept log: its size and last write are read from that file as well
  return [...current, ...withActivities(extra, home.logs)].sort(oldestFirst);
}
