import { lstatSync } from 'node:fs';
import { rawLine, type JobRecord } from './record';

/*
 * A job's activity, read from its log at print time: how many bytes it holds and when it was last
 * written (the file's size and mtime). No process writes these fields: the job writes its log
 * itself, so the log is the heartbeat, and nothing has to be kept in step.
 */

export interface Activity {
  /** size of the log in bytes; null when there is no log (QUEUED, CANCELLED, removed) */
  log_bytes: number | null;
  /** ISO time of the log's last write (its mtime); null when there is no log or it is empty */
  last_output_at: string | null;
}

const NO_LOG: Activity = { log_bytes: null, last_output_at: null };

/** The log's size and last write, one stat; a missing or unreadable log gives nulls. */
export function logActivity(rec: Pick<JobRecord, 'log'>): Activity {
  if (typeof rec.log !== 'string' || rec.log === '') return NO_LOG;
  // throwIfNoEntry: a missing log (queued jobs, 10,000 finished records) costs no exception
  // lstat: a link planted at the log path says nothing of the job's output
  const st = lstatSync(rec.log, { throwIfNoEntry: false, bigint: false });
  if (!st?.isFile()) return NO_LOG;
  // an empty log's mtime is when it was created, not output
  return { log_bytes: st.size, last_output_at: st.size === 0 ? null : new Date(st.mtimeMs).toISOString() };
}

const FIELDS = ['log_bytes', 'last_output_at'];
/** The line a record with its activity prints as, when made from a record's raw line (see ndjson). */
const printedLines = new WeakMap<object, string>();
export const activityLine = (record: object): string | undefined => printedLines.get(record);

/**
 * The record as printed: with its activity, added to the record read for printing (no copy: a
 * copy per record is a measurable part of listing 10,000). A record read from one line keeps its
 * raw line, the fields appended, so it is not re-encoded either; one that already carried either
 * field (hand-written) has it replaced and is encoded the usual way.
 */
export function withActivity<T extends JobRecord>(rec: T): T & Activity {
  const act = logActivity(rec);
  const raw = rawLine(rec) ?? '';
  const appendable = raw.endsWith('}\n') && !FIELDS.some((f) => Object.hasOwn(rec, f));
  const printed = Object.assign(rec, act);
  if (appendable) {
    printedLines.set(
      printed,
      `${raw.slice(0, -2)},"log_bytes":${act.log_bytes},"last_output_at":${JSON.stringify(act.last_output_at)}}\n`,
    );
  } else printedLines.delete(printed);
  return printed;
}

/** When the job last showed a sign of life: its last output, else its start (ms since the epoch). */
export function lastSignOfLife(rec: JobRecord & Partial<Activity>): number {
  const at = rec.last_output_at ?? rec.started_at;
  const ms = at ? Date.parse(at) : NaN;
  return Number.isFinite(ms) ? ms : NaN;
}

/** How long a RUNNING job has been silent (ms); null for any other state or an unreadable time. */
export function silentMs(rec: JobRecord & Partial<Activity>, now = Date.now()): number | null {
  if (rec.status !== 'RUNNING') return null;
  const since = lastSignOfLife(rec);
  return Number.isFinite(since) ? Math.max(0, now - since) : null;
}
