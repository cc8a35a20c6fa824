import { withStart } from './start-file';
import { StateError } from './errors';
import { closeSync, readdirSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { openOwnFileStat, writeFileAtomic } from './fsutil';
import { isValidName } from './names';
import { recordPath, type Home } from './paths';
import { randomHex } from './random';

export const STATUSES = [
  'QUEUED',
  'RUNNING',
  'PAUSED',
  'SUCCEEDED',
  'FAILED',
  'STOPPED',
  'CANCELLED',
  'DEAD',
  'STALE',
] as const;
export type Status = (typeof STATUSES)[number];
const TERMINAL: ReadonlySet<string> = new Set(['SUCCEEDED', 'FAILED', 'STOPPED', 'CANCELLED', 'DEAD', 'STALE']);
export const isTerminal = (status: string) => TERMINAL.has(status);

/** One job run, exactly as stored in jobs/<name>.json and printed as NDJSON. */
export interface JobRecord {
  v: 1;
  name: string;
  id: string;
  status: Status;
  cmd: string[];
  cwd: string;
  pid: number | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  exit_code: number | null;
  signal: string | null;
  log: string;
  previous_log: string | null;
  after: string[];
  /** the run of each `after` name this job waits for, bound when it was queued (name -> id) */
  after_ids?: Record<string, string>;
  /** the queue (--queue) whose slots this run waits for and occupies, else null */
  queue?: string | null;
  /** its place in that queue: submissions start in this order (first in, first out) */
  queue_seq?: number | null;
  /** --in/--at: the run stays QUEUED until this time (ISO-8601 UTC), else null */
  not_before?: string | null;
  /** why the run ended as it did when no exit status tells (e.g. it could not start), else null */
  reason?: string | null;
  /** the keys of the run's --env (the values are kept in run/<name>@<id>.env, never printed) */
  env_keys?: string[];
  host: string;
  boot_id: string | null;
  starttime: number | null;
  /** the sh process that waits for the job and records its end */
  sup_pid: number | null;
  sup_starttime: number | null;
  /** --retry: the settings (absent without it) */
  retry?: RetrySettings | null;
  /** with retry: the attempt running (or, while waiting, the one to come), from 1 */
  attempt?: number;
  /** with retry: every attempt that has ended, in order */
  attempts?: AttemptRecord[];
  /** with retry: while waiting between attempts, when the next one starts; else null */
  next_attempt_at?: string | null;
  /** --on-end: the command run by `sh -c` once the run has ended (absent without it) */
  on_end?: string | null;
  /** when the on-end command was started (it runs once per run), else null */
  on_end_ran_at?: string | null;
}

export interface RetrySettings {
  /** extra attempts after the first */
  count: number;
  delay_ms: number;
  max_delay_ms: number;
  /** the exit codes ("2") and signals ("SIGKILL") that are retried; null: any failure */
  on: string[] | null;
}

export interface AttemptRecord {
  attempt: number;
  exit_code: number | null;
  signal: string | null;
  ended_at: string;
}

// Records are tiny; anything this large is not one of ours and is not read into memory.
const MAX_RECORD_BYTES = 8 * 1024 * 1024;

/** A record file that cannot be read as one (a user can cause it): exit 1, one line, never a stack. */
export class CorruptRecordError extends StateError {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: corrupt record (${reason})`);
  }
}

// One shared buffer: a record is read with open/fstat/read/close and no allocation (status
// over 10,000 records spends most of its time here). openOwnFile refuses a symlink, a hard
// link or a FIFO at the record's path: such a file is reported corrupt, never read through.
const FIRST_READ = Buffer.allocUnsafe(64 * 1024);

function readCapped(file: string): RecordBytes {
  const { fd, st } = openOwnFileStat(file);
  try {
    const first = readSync(fd, FIRST_READ, 0, FIRST_READ.length, 0);
    if (first < FIRST_READ.length) return { text: FIRST_READ.toString('utf8', 0, first), st };
    const { size } = st;
    if (size > MAX_RECORD_BYTES) throw new CorruptRecordError(file, `${size} bytes`);
    const buf = Buffer.allocUnsafe(size);
    FIRST_READ.copy(buf, 0, 0, first);
    let off = first;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return { text: buf.toString('utf8', 0, off), st };
  } finally {
    closeSync(fd);
  }
}

/** The exact line a record was read from, when it was one line: printed as is, not re-encoded. */
const rawLines = new WeakMap<object, string>();
export const rawLine = (record: object): string | undefined => rawLines.get(record);
export const forgetRawLine = (record: object): void => void rawLines.delete(record);

const isIntOrNull = (x: unknown) => x === null || Number.isSafeInteger(x);
const isStrOrNull = (x: unknown) => x === null || typeof x === 'string';
const isIdMap = (x: unknown) =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && Object.values(x).every((id) => typeof id === 'string');

const isCount = (x: unknown, max: number) => Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) <= max;
const isRetry = (x: any) =>
  typeof x === 'object' &&
  isCount(x.count, 1000) &&
  isCount(x.delay_ms, 2 ** 31) &&
  isCount(x.max_delay_ms, 2 ** 31) &&
  (x.on === null || (Array.isArray(x.on) && x.on.every((s: unknown) => typeof s === 'string')));

function shapeError(r: any, name: string): string | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'not a JSON object';
  if (r.v !== 1) return 'unknown schema version';
  if (r.name !== name || !isValidName(r.name)) return 'name does not match the file';
  if (typeof r.id !== 'string' || !STATUSES.includes(r.status)) return 'bad id or status';
  if (!Array.isArray(r.cmd) || !r.cmd.every((a: unknown) => typeof a === 'string')) return 'bad cmd';
  if (!Array.isArray(r.after) || !r.after.every(isValidName)) return 'bad after';
  if (!isIntOrNull(r.pid) || !isIntOrNull(r.starttime) || !isIntOrNull(r.exit_code))
    return 'bad pid, starttime or exit_code';
  if (!isStrOrNull(r.started_at) || !isStrOrNull(r.ended_at) || !isStrOrNull(r.signal) || !isStrOrNull(r.boot_id))
    return 'bad times, signal or boot_id';
  if (typeof r.log !== 'string' || typeof r.cwd !== 'string') return 'bad log or cwd';
  if (r.after_ids !== undefined && !isIdMap(r.after_ids)) return 'bad after_ids';
  if (r.reason !== undefined && !isStrOrNull(r.reason)) return 'bad reason';
  if (r.retry !== undefined && r.retry !== null && !isRetry(r.retry)) return 'bad retry';
  if (r.on_end !== undefined && !isStrOrNull(r.on_end)) return 'bad on_end';
  return null;
}

/** Reads and validates one record; null when the file does not exist. */
export function readRecordFile(file: string, name: string, overlay = true): JobRecord | null {
  const got = readRecordBytes(file);
  return got === null ? null : parseRecord(file, name, got.text, overlay);
}

/** A record file's text, and what fstat said of the file it was read from. */
export interface RecordBytes {
  text: string;
  st: Stats;
}

/** A record file's text; null when the file does not exist (anything unreadable is corrupt). */
export function readRecordBytes(file: string): RecordBytes | null {
  try {
    return readCapped(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (err instanceof CorruptRecordError) throw err;
    throw new CorruptRecordError(file, (err as Error).message);
  }
}

/** The record a file's text holds, validated as one of `name` (read from `file`, which errors name). */
export function parseRecord(file: string, name: string, text: string, overlay = true): JobRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CorruptRecordError(file, text.length === 0 ? 'empty' : 'not JSON');
  }
  const problem = shapeError(parsed, name);
  if (problem) throw new CorruptRecordError(file, problem);
  if (text.indexOf('\n') === text.length - 1) rawLines.set(parsed as object, text);
  // a queued run the queue's hand-off started reads RUNNING from its start file on (handoff.ts)
  return overlay ? withStart(file, parsed as JobRecord) : (parsed as JobRecord);
}

export const readRecord = (home: Home, name: string) => readRecordFile(recordPath(home, name), name);

export function newRunId(): string {
  return `${Date.now().toString(36)}-${randomHex(8)}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}

/**
 * Writes a record atomically: a fresh temp file (jobs/.<name>.<pid>.<n>.tmp, created O_EXCL,
 * never through a link) renamed over the old one.
 */
export function writeRecord(home: Home, record: JobRecord): void {
  writeFileAtomic(recordPath(home, record.name), JSON.stringify(record) + '\n', join(home.jobs, `.${record.name}`));
}

/** Names of all jobs with a record file (temp and spare files start with '.' and are skipped). */
export function listNames(home: Home): string[] {
  let entries: string[];
  try {
    entries = readdirSync(home.jobs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const names: string[] = [];
  for (const entry of entries) {
    if (entry.endsWith('.json') && entry.charCodeAt(0) !== 46) names.push(entry.slice(0, -5));
  }
  return names;
}

/** What a command that acts on jobs did: the records to print, what it refused (exit 1), what it noted. */
export interface ActionResult {
  records: JobRecord[];
  /** one line per job that was not acted on (or not fully), with the reason: the command exits 1 */
  refusals: string[];
  /** said on stderr, not a failure (a job kept, a corrupt record skipped) */
  notes: string[];
}

/** The ActionResult of one [record, refusal] pair per job. */
export function gathered(results: Array<[JobRecord | null, string | null]>): ActionResult {
  return {
    records: results.map(([r]) => r).filter((r): r is JobRecord => r !== null),
    refusals: results.map(([, p]) => p).filter((p): p is string => p !== null),
    notes: [],
  };
}
