import { lstatSync, readdirSync } from 'node:fs';
import { fileTimeIso, notBefore } from './fsutil';
import { forgetRawLine, rawLine, type JobRecord } from './record';

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
  return { log_bytes: st.size, last_output_at: st.size === 0 ? null : fileTimeIso(st) };
}

/** logs/ is listed once this many logs, and most of those looked at, have turned out missing. */
const MISSES_BEFORE_LISTING = 64;
// a log path ending in a plain entry of logs/ (ASCII, so spelled as readdir spells it; no '/')
const PLAIN_ENTRY = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;

/**
 * Reads the activity of many logs, one after another. Each log is lstat'ed until most have turned
 * out missing (10,000 finished records whose logs were removed): then logs/ is listed once, and a
 * log not in that listing is missing with no lstat of its own. A listed log is still lstat'ed, so
 * log_bytes and last_output_at always come from the file itself; the listing, taken after the
 * records were read, only says "not there" a little earlier than each lstat would. A home whose
 * logs are there (a few queued jobs aside) is never listed: that would cost more than it saves.
 */
function activityReader(logsDir: string): (rec: Pick<JobRecord, 'log'>) => Activity {
  const prefix = `${logsDir}/`;
  let looked = 0;
  let misses = 0;
  let listed: Set<string> | null | undefined; // undefined: not listed yet; null: cannot be
  return (rec) => {
    if (listed === undefined && misses >= MISSES_BEFORE_LISTING && misses * 2 > looked) listed = entriesOf(logsDir);
    if (listed && typeof rec.log === 'string' && rec.log.startsWith(prefix)) {
      const entry = rec.log.slice(prefix.length);
      if (PLAIN_ENTRY.test(entry) && !listed.has(entry)) return NO_LOG;
    }
    const act = logActivity(rec);
    looked++;
    if (act === NO_LOG) misses++;
    return act;
  };
}

/** The names in a directory now; none when it does not exist; null when it cannot be read. */
function entriesOf(dir: string): Set<string> | null {
  try {
    return new Set(readdirSync(dir));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? new Set() : null;
  }
}

const FIELDS = ['log_bytes', 'last_output_at'];
/** Records given their activity whose raw line is printed with the fields appended (see ndjson). */
const appendedToRawLine = new WeakSet<object>();

/** The line a record with its activity prints as, made at print time from its raw line (see ndjson). */
export function activityLine(record: object): string | undefined {
  if (!appendedToRawLine.has(record)) return undefined;
  const { log_bytes, last_output_at } = record as Activity;
  const fields = `"log_bytes":${log_bytes},"last_output_at":${JSON.stringify(last_output_at)}`;
  return `${rawLine(record)!.slice(0, -2)},${fields}}\n`;
}

/**
 * The record as printed: with its activity, added to the record read for printing (no copy: a
 * copy per record is a measurable part of listing 10,000). A record read from one line keeps its
 * raw line, the fields appended, so it is not re-encoded either; one that already carried either
 * field (hand-written), or whose line does not end in '}', is encoded the usual way.
 */
export function withActivity<T extends JobRecord>(rec: T): T & Activity {
  return addActivity(rec, logActivity(rec));
}

/** Many records as printed (see withActivity), their logs in `logsDir` read as activityReader reads them. */
export function withActivities<T extends JobRecord>(records: T[], logsDir: string): Array<T & Activity> {
  const read = activityReader(logsDir);
  return records.map((rec) => addActivity(rec, read(rec)));
}

function addActivity<T extends JobRecord>(rec: T, act: Activity): T & Activity {
  const raw = rawLine(rec);
  const appendable = raw?.endsWith('}\n') && !FIELDS.some((f) => Object.hasOwn(rec, f));
  const printed = Object.assign(rec, outputNotBeforeStart(act, rec.started_at));
  if (appendable) appendedToRawLine.add(printed);
  else {
    appendedToRawLine.delete(printed);
    // its raw line no longer says what it holds
    forgetRawLine(printed);
  }
  return printed;
}

/** A run's log is a new file, written only once the run has started: its output is never before the start. */
function outputNotBeforeStart(act: Activity, startedAt: string | null): Activity {
  const at = act.last_output_at === null ? null : notBefore(act.last_output_at, startedAt);
  return at === act.last_output_at ? act : { ...act, last_output_at: at };
}

/** When the job last showed a sign of life: its last output, else its start (ms since the epoch). */
export function lastSignOfLife(rec: JobRecord & Partial<Activity>): number {
  const at = rec.last_output_at ?? rec.started_at;
  const ms = at ? Date.parse(at) : NaN;
  return Number.isFinite(ms) ? ms : NaN;
}

/**
 * How long a RUNNING job has been silent (ms); null for any other state, for a run waiting to
 * retry, or when a time is unreadable.
 */
export function silentMs(rec: JobRecord & Partial<Activity>, now = Date.now()): number | null {
  if (rec.status !== 'RUNNING') return null;
  // waiting between --retry attempts is silence by design, not a hang; the next attempt's marker
  // line in the log is its first sign of life. Past the time that attempt was due, a supervisor
  // that has not started it (stopped, hung) is silent since then.
  const due = rec.next_attempt_at ? Date.parse(rec.next_attempt_at) : null;
  if (due !== null && !(now > due)) return null;
  const since = Math.max(lastSignOfLife(rec), due ?? -Infinity);
  return Number.isFinite(since) ? Math.max(0, now - since) : null;
}
