import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StateError } from './errors';

/*
 * Our files inside the home are opened without following links: a symlink or a hard link
 * planted at one of our paths is never written or read through. New files are created with
 * O_EXCL (which refuses any existing name, a dangling symlink included) and renamed into place
 * (rename replaces a link, never writes through it).
 */

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

/**
 * A file's mtime as an ISO time, at most now: what we write there is never later, and a time set
 * by hand or restored (a tmpfs takes any, even one no Date can hold) must not throw or lie ahead.
 */
export const fileTimeIso = (st: { mtimeMs: number }): string =>
  new Date(Math.max(0, Math.min(st.mtimeMs, Date.now()))).toISOString();

// toISOString's own form, in which lexical order is time order
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * A time (as toISOString writes it) raised to `floor` when floor is a later time: the kernel
 * stamps files from a coarse clock a few ms behind the one records' times are read from, so a
 * file's time can read as before what it follows (an end before its start, a start before the
 * queueing, output before the start). A floor that is no time is passed over.
 */
export function notBefore(time: string, floor: string | null | undefined): string {
  if (floor == null) return time;
  if (ISO_TIME.test(floor)) return floor > time ? floor : time;
  const ms = Date.parse(floor);
  return Number.isFinite(ms) && ms > Date.parse(time) ? new Date(ms).toISOString() : time;
}

export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}

/** A full disk or quota is the user's to fix, not a crash: one line, exit 1. */
export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function noSpaceError(path: string, err: unknown): StateError {
  const code = (err as NodeJS.ErrnoException).code;
  return new StateError(
    `cannot write ${path}: ${code === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on the device'} (${code})`,
  );
}

/** The file at path is not a plain file of ours: a link, a FIFO, a directory, a second name. */
export class NotOwnFileError extends Error {
  readonly code = 'ENOTOWNFILE';
}

/**
 * Opens an existing file of ours for reading: never through a symlink, never blocking on a
 * FIFO, and only a regular file with one name (a hard link could be anybody's file). No name
 * at all is fine: the file was ours when opened and has since been replaced by an atomic
 * rename (a record rewritten), so what it holds is the whole previous version.
 */
export function openOwnFile(path: string): number {
  return openOwnFileStat(path).fd;
}

/** openOwnFile, with what fstat said of the file opened. */
export function openOwnFileStat(path: string): { fd: number; st: Stats } {
  const opened = openRegularFile(path);
  if (opened.st.nlink <= 1) return opened;
  closeSync(opened.fd);
  throw new NotOwnFileError(`a hard link (${opened.st.nlink} names), not read`);
}

/** A regular file opened to read, with its stat: never through a symlink, never blocking on a FIFO. */
function openRegularFile(path: string): { fd: number; st: Stats } {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new NotOwnFileError('a symbolic link, not followed');
    throw err;
  }
  const st = fstatSync(fd);
  if (st.isFile()) return { fd, st };
  closeSync(fd);
  throw new NotOwnFileError('not a regular file');
}

/** Reads a small file of ours (see openOwnFile) whole. */
export function readOwnFile(path: string): string {
  const fd = openOwnFile(path);
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

let tmpCounter = 0;

/** Creates a new temp file `<tmpBase>.<pid>.<n>.tmp` (O_EXCL|O_NOFOLLOW), skipping names taken. */
function createTemp(tmpBase: string): { fd: number; tmp: string } {
  for (let tries = 0; ; tries++) {
    const tmp = `${tmpBase}.${process.pid}.${++tmpCounter}.tmp`;
    try {
      return { fd: openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600), tmp };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 1000) throw err;
    }
  }
}

/**
 * Replaces path atomically with data: a fresh temp file beside it (its name starts with
 * tmpBase, default `.<basename>`), written whole, then renamed over path. A full disk is a
 * StateError naming the file; nothing half-written is left behind.
 */
export function writeFileAtomic(
  path: string,
  data: string | Buffer,
  tmpBase = join(dirname(path), `.${basename(path)}`),
): void {
  let created: { fd: number; tmp: string } | null = null;
  try {
    created = createTemp(tmpBase);
    let buf = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      while (buf.length > 0) buf = buf.subarray(writeSync(created.fd, buf));
    } finally {
      closeSync(created.fd);
    }
    renameSync(created.tmp, path);
  } catch (err) {
    if (created) unlinkQuietly(created.tmp);
    throw isNoSpace(err) ? noSpaceError(path, err) : err;
  }
}

/**
 * Renames a plain file of ours (regular, one name). Anything else at `from` (a planted link)
 * is not ours to keep: it is unlinked and false returned. False too when there is nothing.
 */
export function renameOwnFile(from: string, to: string): boolean {
  let st;
  try {
    st = lstatSync(from);
  } catch {
    return false;
  }
  if (!st.isFile() || st.nlink !== 1) {
    unlinkQuietly(from);
    return false;
  }
  try {
    renameSync(from, to);
    return true;
  } catch {
    return false;
  }
}

/** True when something (a file, a link, anything) is at path; a link is not followed. */
export function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens a job's log to append bgmon's own lines (a marker, a reason), never through a link nor
 * into a file with a second name, so that they start a line of their own: when the job's output
 * ended mid-line, a newline is written first. Returns the descriptor.
 */
export function openLogAtLineStart(log: string): number {
  const fd = openSync(log, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    const st = fstatSync(fd);
    // a second name of another file (a hard link planted there) or a FIFO is not the job's log
    if (!st.isFile() || st.nlink !== 1) throw new NotOwnFileError(`${log}: not a log of ours`);
    const size = st.size;
    const last = Buffer.alloc(1);
    if (size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a) writeSync(fd, '\n');
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * A log, opened to read: never through a symlink planted at its path (that would print another
 * file), never blocking on a FIFO; anything but a regular file is refused (throws).
 */
export const openLogToRead = (path: string): number => openRegularFile(path).fd;

/** A regular file is at path (a link is not followed). */
export function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Creates an empty file of ours (a mark), or finds one: true when a regular file is there now.
 * O_EXCL neither follows a link nor opens a FIFO planted at the path (which would block).
 */
export function createEmpty(path: string): boolean {
  try {
    closeSync(openSync(path, 'wx', 0o600));
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EEXIST' && isFile(path);
  }
}

/**
 * Whether fd is a terminal. node:tty is loaded only when asked: it loads net and the streams,
 * about 1.5 ms of start-up that a command given names or --json never needs.
 */
export function isTty(fd: number): boolean {
  return (require('node:tty') as typeof import('node:tty')).isatty(fd);
}
