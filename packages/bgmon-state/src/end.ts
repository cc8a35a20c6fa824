import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
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

export const endPath = (home: Home, name: string, id: string) => join(home.jobs, `.${name}@${id}.end`);
// Room for the folded record, reserved at start like the end file: the fold needs no free space.
export const sparePath = (home: Home, name: string, id: string) => join(home.jobs, `.${name}@${id}.spare`);
const EXCLUSIVE = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Reserves the space the folded record of a run will need (its RUNNING record plus room). */
export function reserveSpare(home: Home, name: string, id: string, bytes: number): void {
  const fd = openSync(sparePath(home, name, id), constants.O_WRONLY | EXCLUSIVE, 0o600);
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
    fd = openSync(spare, constants.O_WRONLY | constants.O_NOFOLLOW);
  } catch {
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

/** Creates the run's end file (never through a link) and returns its descriptor, offset 0. */
export function reserveEnd(home: Home, name: string, id: string): number {
  const fd = openSync(endPath(home, name, id), constants.O_RDWR | EXCLUSIVE, 0o600);
  try {
    // positional: the descriptor's offset stays 0 for the supervisor's write
    writeSync(fd, Buffer.alloc(RESERVED, 32), 0, RESERVED, 0);
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

const END_LINE = /^(\d{1,3})\n/;

/** The end the supervisor recorded for this run, or null while there is none. */
export function readEnd(home: Home, name: string, id: string): RunEnd | null {
  let fd: number;
  try {
    fd = openSync(endPath(home, name, id), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(RESERVED);
    const got = readSync(fd, buf, 0, RESERVED, 0);
    const m = END_LINE.exec(buf.toString('latin1', 0, got));
    if (!m) return null;
    return { status: Number(m[1]), endedAt: new Date(fstatSync(fd).mtimeMs).toISOString() };
  } finally {
    closeSync(fd);
  }
}

/**
 * The record of a run that ended with a shell status: 129-192 is signal status-128 (the contract
 * reads them as a shell does), anything else an exit code.
 */
export function endedRecord(rec: JobRecord, end: RunEnd, stopped: boolean): JobRecord {
  const bySignal = end.status > 128 && end.status <= 192;
  const ended = {
    ...rec,
    // file times come from the kernel's coarse clock (a few ms behind): never before the start
    ended_at: rec.started_at !== null && end.endedAt < rec.started_at ? rec.started_at : end.endedAt,
    exit_code: bySignal ? null : end.status,
    signal: bySignal ? signalName(end.status - 128) : null,
  };
  if (stopped) return { ...ended, status: 'STOPPED' };
  return { ...ended, status: end.status === 0 ? 'SUCCEEDED' : 'FAILED' };
}

