import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileTimeIso, notBefore, openOwnFile, unlinkQuietly } from './fsutil';
import type { Home } from './paths';
import { signalName } from './proc';
import type { JobRecord } from './record';

/*
 * A run's end file, jobs/.<name>@<id>.end: the supervisor's only output. bgmon-start reserves it
 * (spaces, so the supervisor overwrites blocks already allocated and a full disk cannot lose the
 * end), the supervisor writes "<status>\n" into it as sh's `wait` reports it, and its mtime is the
 * end time. Readers fold it into the record; the record file itself is only ever written by Node.
 * It starts with '.' so record listings skip it, and it lives in jobs/ so the file events that
 * bgmon-wait and bgmon-tail -f already watch announce an end at once.
 */

const RESERVED = 32;
// With retries, lines per attempt: "pid P\n" and "attempt K STATUS UPTIME_CS DELAY_MS\n", well under this.
const PER_ATTEMPT = 64;

export const endPath = (home: Home, name: string, id: string) => join(home.jobs, `.${name}@${id}.end`);
// Room for the folded record, reserved at start like the end file: the fold needs no free space.
export const sparePath = (home: Home, name: string, id: string) => join(home.jobs, `.${name}@${id}.spare`);
const EXCLUSIVE = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Reserves the space the folded record of a run will need (its RUNNING record plus room). */
/**
 * Creates a run's file exclusively (never through a link). One already there is a launch of this
 * same run that was interrupted before the job ran (a queued run is launched again under the same
 * id): it is removed, not reused, and a new file made.
 */
export function createFreshFile(path: string, flags: number): number {
  try {
    return openSync(path, flags | EXCLUSIVE, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    unlinkQuietly(path);
    return openSync(path, flags | EXCLUSIVE, 0o600);
  }
}

export function reserveSpare(home: Home, name: string, id: string, bytes: number): void {
  const fd = createFreshFile(sparePath(home, name, id), constants.O_WRONLY);
  try {
    writeSync(fd, Buffer.alloc(bytes + 4096, 32));
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a folded record through the run's spare: overwritten in place, cut to length, renamed
 * over the record. False when there is no spare (the caller writes the record the usual way).
 */
export function writeThroughSpare(home: Home, rec: JobRecord, recordFile: string): boolean {
  const spare = sparePath(home, rec.name, rec.id);
  let fd: number;
  try {
    fd = openSync(spare, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) {
    // a FIFO or a second name of another file planted there: never written through
    closeSync(fd);
    return false;
  }
  try {
    const text = Buffer.from(JSON.stringify(rec) + '\n');
    writeSync(fd, text, 0, text.length, 0);
    ftruncateSync(fd, text.length);
  } finally {
    closeSync(fd);
  }
  renameSync(spare, recordFile);
  return true;
}

/** Creates the run's end file (never through a link), room for every attempt; its descriptor, offset 0. */
export function reserveEnd(home: Home, name: string, id: string, attempts = 1): number {
  const fd = createFreshFile(endPath(home, name, id), constants.O_RDWR);
  const size = attempts > 1 ? RESERVED + attempts * PER_ATTEMPT : RESERVED;
  try {
    // positional: the descriptor's offset stays 0 for the supervisor's write
    writeSync(fd, Buffer.alloc(size, 32), 0, size, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

export interface RunEnd {
  /** as sh's wait reports it: the exit code, or 128+n for signal n */
  status: number;
  endedAt: string;
}

/** One ended attempt of a retried run, as its supervisor wrote it. */
export interface AttemptEnd {
  attempt: number;
  status: number;
  endedAt: string;
  /** null: this attempt's end is the run's outcome; else the wait before the next attempt */
  delayMs: number | null;
}

/** What a retried run's end file says so far. */
export interface EndFile {
  attempts: AttemptEnd[];
  /** the process of the attempt after the last ended one, once the supervisor has forked it */
  pid: number | null;
  /** the process of the last attempt the supervisor forked after the first, ended or not */
  lastPid: number | null;
  /** the run's outcome, once there is one */
  end: RunEnd | null;
}

// A wait status as sh's $? gives it: 0-255, nothing larger (which a shell would report as % 256).
const STATUS = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const END_LINE = new RegExp(`^${STATUS}\\n`);
const ATTEMPT_LINE = new RegExp(`^attempt (\\d{1,9}) ${STATUS} (\\d{1,15}) (\\d{1,15}|-)$`);
const PID_LINE = /^pid (\d{1,9})$/;
const MAX_END_BYTES = 1 << 20;

/** The run's end file as the supervisor has written it so far, or null when there is none. */
export function readEndFile(home: Home, name: string, id: string): EndFile | null {
  let fd: number;
  try {
    // anything but our own plain file (a FIFO would block, a directory throw) is no end
    fd = openOwnFile(endPath(home, name, id));
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    const buf = Buffer.alloc(Math.min(Math.max(st.size, RESERVED), MAX_END_BYTES));
    const text = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
    const endedAt = fileTimeIso(st);
    const m = END_LINE.exec(text);
    if (m) return { attempts: [], pid: null, lastPid: null, end: { status: Number(m[1]), endedAt } };
    return parseAttempts(text.slice(0, text.lastIndexOf('\n') + 1), endedAt);
  } finally {
    closeSync(fd);
  }
}

/**
 * Complete lines only: a line still being written is not there yet. A stop during the wait
 * after attempt K repeats K's line as the outcome: the attempt keeps its own end time.
 */
function parseAttempts(text: string, mtime: string): EndFile {
  const file: EndFile = { attempts: [], pid: null, lastPid: null, end: null };
  const clock = uptimeClock();
  for (const line of text.split('\n')) {
    const a = ATTEMPT_LINE.exec(line);
    const p = a ? null : PID_LINE.exec(line);
    if (p) file.pid = file.lastPid = Number(p[1]);
    if (!a) continue;
    const final = a[4] === '-';
    const attempt = Number(a[1]);
    const prev = file.attempts[file.attempts.length - 1];
    const again = prev !== undefined && prev.attempt === attempt;
    const endedAt = again ? prev.endedAt : final ? mtime : clock(Number(a[3]));
    if (again) file.attempts.pop();
    file.attempts.push({ attempt, status: Number(a[2]), endedAt, delayMs: final ? null : Number(a[4]) });
    file.pid = null;
    if (final) file.end = { status: Number(a[2]), endedAt: mtime };
  }
  return file;
}

/** Turns the uptime the supervisor read (1/100 s, /proc/uptime) into an ISO time. */
export function uptimeClock(): (centiseconds: number) => string {
  let upNow = 0;
  try {
    upNow = Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * 1000;
  } catch {}
  const now = Date.now();
  return (cs) => new Date(now - Math.max(0, upNow - cs * 10)).toISOString();
}

/** The end the supervisor recorded for this run, or null while there is none. */
export function readEnd(home: Home, name: string, id: string): RunEnd | null {
  return readEndFile(home, name, id)?.end ?? null;
}

/**
 * The record of a run that ended with a shell status: 129-192 is signal status-128 (the contract
 * reads them as a shell does), anything else an exit code.
 */
export function endedRecord(rec: JobRecord, end: RunEnd, stopped: boolean): JobRecord {
  const bySignal = end.status > 128 && end.status <= 192;
  const ended = {
    ...rec,
    ended_at: notBefore(end.endedAt, rec.started_at),
    exit_code: bySignal ? null : end.status,
    signal: bySignal ? signalName(end.status - 128) : null,
  };
  if (stopped) return { ...ended, status: 'STOPPED' };
  return { ...ended, status: end.status === 0 ? 'SUCCEEDED' : 'FAILED' };
}
