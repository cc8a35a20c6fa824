import { UsageError } from './errors';
import type { Home } from './paths';
import { STATUSES, type CorruptRecordError, type JobRecord } from './record';
import { foldIfFree } from './fold';
import { currentState } from './classify';
import { loadRecords, matchNames } from './select';
import { advanceQueue } from './queue';
import { isReadyToLeaveQueue } from './queue-rules';

/** Parses `--status RUNNING,failed` into a set of states. */
export function parseStatusFilter(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  const wanted = value.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  for (const s of wanted) if (!(STATUSES as readonly string[]).includes(s)) throw new UsageError(`--status: unknown state ${JSON.stringify(s)} (one of ${STATUSES.join(', ')})`);
  if (wanted.length === 0) throw new UsageError('--status: give at least one state');
  return new Set(wanted);
}

export interface Statuses {
  records: JobRecord[];
  corrupt: CorruptRecordError[];
  /** queued names that could not be advanced (their lock is stuck), one line each */
  notes: string[];
}

/**
 * The current state of the named jobs (all when none are named), oldest first. A queued job
 * whose predecessors have all ended is started or cancelled on the way (see queue.ts).
 */
export async function jobStatuses(home: Home, patterns: string[]): Promise<Statuses> {
  return statusesOf(home, patterns.length > 0 ? matchNames(home, patterns) : undefined);
}

/** jobStatuses of existing names (every job when undefined); a name without a record is skipped. */
export async function statusesOf(home: Home, names: string[] | undefined): Promise<Statuses> {
  let { records, corrupt } = loadRecords(home, names);
  let notes: string[] = [];
  if (records.some((r) => isReadyToLeaveQueue(home, r))) {
    notes = await advanceQueue(home);
    ({ records, corrupt } = loadRecords(home, names));
  }
  const current = records.map((r) => currentState(home, r));
  current.forEach((cur, i) => records[i].status === 'RUNNING' && foldIfFree(home, cur));
  return { records: current, corrupt, notes };
}
