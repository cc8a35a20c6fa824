import { closeSync, fstatSync, lstatSync, readSync } from 'node:fs';
import { openLogToRead } from './fsutil';
import { logPath, previousLogPath, type Home } from './paths';
import { UsageError } from './errors';
import { readRecord } from './record';

/** A line that is longer is matched on its first this many bytes (the rest is read past, not kept). */
export const MATCH_LINE_BYTES = 1024 * 1024;
const CHUNK = 64 * 1024;

/** The line that matched: as `bgmon-tail --json` prints a line (offset just past its newline). */
export interface LogMatch {
  name: string;
  id: string;
  line: string;
  offset: number;
}

/**
 * Reading one run's log for lines that match, from its start, only new bytes each time. Memory is
 * bounded: one read chunk and the unfinished line (at most MATCH_LINE_BYTES).
 */
export interface LogScan {
  name: string;
  id: string;
  re: RegExp;
  fd: number | null;
  /** where the next read starts */
  offset: number;
  /** the unfinished line so far (its first MATCH_LINE_BYTES) */
  held: Buffer;
  heldLen: number;
  /** past the on-end marker: what follows is the hook's output, not the job's */
  pastJob: boolean;
}

// Lines bgmon itself writes into a job's log (see supervisor.sh and on-end.ts): never the job's.
const ON_END_LINE = '--- bgmon: on-end ---';
const ATTEMPT_LINE = /^--- bgmon: attempt \d+ of \d+ ---$/;

/** `--until REGEX`: a JavaScript regular expression, matched anywhere in a line; bad syntax is exit 2. */
export function parseLineRegex(text: string, flag: string): RegExp {
  try {
    return new RegExp(text);
  } catch (err) {
    throw new UsageError(
      `${flag}: invalid regular expression ${JSON.stringify(text)}: ` +
        `${(err as Error).message.replace(/^Invalid regular expression: /, '')}`,
    );
  }
}

export function newScan(name: string, id: string, re: RegExp): LogScan {
  return { name, id, re, fd: null, offset: 0, held: Buffer.alloc(0), heldLen: 0, pastJob: false };
}

function openQuietly(path: string): number | null {
  try {
    // never through a link planted at the log path: its lines are not the job's
    return openLogToRead(path);
  } catch {
    return null;
  }
}

/**
 * Opens the run's own log. A rerun moves the replaced run's log to NAME@ID.log before it creates
 * its own, and writes its record last: so when a kept log of this run exists after the open, that
 * file is the run's log; when none does, the file at the log path is the run's only while the
 * record still names this run. A run that never started (CANCELLED, stopped or failed while
 * QUEUED) wrote no line of its own: a file at its log path is a later run's.
 */
export function openScan(home: Home, scan: LogScan, started: boolean): void {
  if (scan.fd !== null || !started) return;
  const kept = previousLogPath(home, scan.name, scan.id);
  let fd = openQuietly(logPath(home, scan.name));
  const isCurrent = currentId(home, scan.name) === scan.id;
  const keptIno = lstatSync(kept, { throwIfNoEntry: false })?.ino;
  if (keptIno !== undefined && (fd === null || fstatSync(fd).ino !== keptIno)) {
    if (fd !== null) closeSync(fd);
    fd = openQuietly(kept);
  } else if (keptIno === undefined && !isCurrent && fd !== null) {
    closeSync(fd);
    fd = null;
  }
  scan.fd = fd;
}

function currentId(home: Home, name: string): string | null {
  try {
    return readRecord(home, name)?.id ?? null;
  } catch {
    return null; // unreadable: nothing says the log is this run's
  }
}

export function closeScan(scan: LogScan): void {
  if (scan.fd !== null) closeSync(scan.fd);
  scan.fd = null;
}

const scratch = Buffer.allocUnsafe(CHUNK);

/** Adds bytes to the unfinished line, keeping its first MATCH_LINE_BYTES only. */
function hold(scan: LogScan, bytes: Buffer): void {
  const room = MATCH_LINE_BYTES - scan.heldLen;
  if (room <= 0 || bytes.length === 0) return;
  const take = Math.min(room, bytes.length);
  if (scan.heldLen + take > scan.held.length) {
    const bigger = Buffer.allocUnsafe(
      Math.min(MATCH_LINE_BYTES, Math.max(2 * scan.held.length, scan.heldLen + take, 256)),
    );
    scan.held.copy(bigger, 0, 0, scan.heldLen);
    scan.held = bigger;
  }
  scan.heldLen += bytes.copy(scan.held, scan.heldLen, 0, take);
}

/** The held line, tested and dropped; the match when it matches. */
function testHeld(scan: LogScan, end: number): LogMatch | null {
  const line = scan.held.toString('utf8', 0, scan.heldLen);
  scan.heldLen = 0;
  if (line === ON_END_LINE) scan.pastJob = true;
  if (scan.pastJob || ATTEMPT_LINE.test(line)) return null;
  return scan.re.test(line) ? { name: scan.name, id: scan.id, line, offset: end } : null;
}

/** Looks at the whole lines in one chunk read at `base`; the bytes after the last newline are held. */
function scanChunk(scan: LogScan, bytes: Buffer, base: number): LogMatch | null {
  let from = 0;
  for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, from)) {
    hold(scan, bytes.subarray(from, nl));
    from = nl + 1;
    const match = testHeld(scan, base + from);
    if (match) return match;
  }
  hold(scan, bytes.subarray(from));
  return null;
}

/**
 * Reads what the log gained since the last call and returns the first whole line that matches
 * (reading stops there). A log shorter than what was read was truncated: read again from its start.
 */
export function scanNew(scan: LogScan): LogMatch | null {
  if (scan.fd === null) return null;
  if (fstatSync(scan.fd).size < scan.offset) {
    scan.offset = 0;
    scan.heldLen = 0;
  }
  for (;;) {
    const got = readSync(scan.fd, scratch, 0, CHUNK, scan.offset);
    if (got === 0) return null;
    const match = scanChunk(scan, scratch.subarray(0, got), scan.offset);
    // on a match, go on later from just past the matching line, not past the whole chunk
    scan.offset = match ? match.offset : scan.offset + got;
    if (match) return match;
  }
}

/** Once the run has ended: its last line, when it has no newline, counts as a line. */
export function scanLast(scan: LogScan): LogMatch | null {
  const match = scanNew(scan);
  if (match || scan.heldLen === 0) return match;
  return testHeld(scan, scan.offset);
}
