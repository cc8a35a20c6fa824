import { closeSync, fstatSync, lstatSync, readSync, watch, type FSWatcher } from 'node:fs';
import { logPath, previousLogPath, type Home } from './paths';
import { isTerminal, readRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { out } from './stdout';
import { UsageError } from './errors';
import { sleepSync } from './sleep';
import { isFile, openLogToRead } from './fsutil';

const CHUNK = 64 * 1024;
/** With --json or several jobs, a longer line is printed as several records of at most this many bytes. */
export const MAX_LINE_BYTES = 1024 * 1024;
/** A running job's log is read this far per round, so one busy job cannot starve the others. */
const ROUND_BYTES = 4 * 1024 * 1024;
const NL = Buffer.from('\n');
// One read buffer for every copy: sinks copy what they keep, so reuse is safe and makes no garbage.
const scratch = Buffer.allocUnsafe(CHUNK);

/**
 * Where the last n lines of an open file begin: the file is scanned backwards from `size` one
 * chunk at a time, so memory stays flat whatever the lines' lengths. A last line without a
 * newline counts as a line. Nothing before `floor` is read: it is where the output may start at
 * the earliest (a cursor), and what follows it counts as a line even when it begins mid-line.
 */
export function lastLinesStart(fd: number, size: number, n: number, floor = 0): number {
  if (n === 0 || size <= floor) return size;
  const buf = Buffer.allocUnsafe(CHUNK);
  // a newline that ends the file closes the last line; it does not begin another
  let end = readSync(fd, buf, 0, 1, size - 1) === 1 && buf[0] === 10 ? size - 1 : size;
  let seen = 0;
  while (end > floor) {
    const pos = Math.max(floor, end - CHUNK);
    const got = readSync(fd, buf, 0, end - pos, pos);
    for (let i = got; i > 0; ) {
      i = buf.lastIndexOf(10, i - 1);
      if (i < 0) break;
      if (++seen === n) return pos + i + 1;
    }
    end = pos;
  }
  return floor;
}

/**
 * Where the newest whole lines of [start, end) that fit in `budget` bytes begin: just past the
 * first newline at or after end - budget - 1. Reads at most `budget` bytes; `end` when not even
 * the newest line fits.
 */
export function newestLinesWithin(fd: number, start: number, end: number, budget: number): number {
  if (end - start <= budget) return start;
  for (let pos = end - budget - 1; pos < end; ) {
    const got = readSync(fd, scratch, 0, Math.min(CHUNK, end - pos), pos);
    if (got === 0) break;
    const nl = scratch.subarray(0, got).indexOf(10);
    if (nl >= 0) return pos + nl + 1;
    pos += got;
  }
  return end;
}

/** A position in one run's log: `id:offset`, as a --json line gives it (offset just past that line). */
export interface Cursor {
  id: string;
  offset: number;
}

const CURSOR_RE = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127}):([0-9]{1,16})$/;

/** Parses `ID:OFFSET`; anything else is a usage error. */
export function parseCursor(text: string): Cursor {
  const m = CURSOR_RE.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[2]))) {
    throw new UsageError(`--since: expected a cursor ID:OFFSET as a --json line gives it, got ${JSON.stringify(text)}`);
  }
  return { id: m[1], offset: Number(m[2]) };
}

/** An open log and the run it belongs to ('' when no record names it); fd null when there is no log. */
interface RunLog {
  fd: number | null;
  ino: number;
  id: string;
  /** the run had ended when its log was opened: everything it wrote is in the file */
  ended?: boolean;
}

/** The log at path opened as a run's (see openLogToRead); throws when there is none to read. */
function openLogOf(path: string, id: string): RunLog {
  const fd = openLogToRead(path);
  return { fd, ino: fstatSync(fd).ino, id };
}

function inodeAt(path: string): number | null {
  try {
    return lstatSync(path).ino;
  } catch {
    return null;
  }
}

/**
 * Whether the log file `ino`, opened before `rec` was read, is that run's log. A rerun moves the
 * replaced run's log to NAME@ID.log, creates its own, and only then writes its record: so a kept
 * log of `rec`'s run that is another file, or a file no longer at the path, or a log beside a run
 * that never ran, means the file belongs to another run.
 */
function isLogOf(home: Home, rec: JobRecord, ino: number): boolean {
  const kept = inodeAt(previousLogPath(home, rec.name, rec.id));
  if (kept !== null) return kept === ino;
  return inodeAt(logPath(home, rec.name)) === ino && rec.status !== 'CANCELLED';
}

/**
 * Opens a job's log together with the id of the run that wrote it, so offsets are never
 * attributed to the wrong run while a rerun replaces the log. A rerun caught halfway is waited
 * for (a few ms); past that the record's run is taken.
 */
function openRunLog(home: Home, name: string): RunLog {
  for (let attempt = 0; ; attempt++) {
    let fd: number | null = null;
    let ino = 0;
    try {
      fd = openLogToRead(logPath(home, name));
      ino = fstatSync(fd).ino;
    } catch {
      if (fd !== null) closeSync(fd);
      fd = null;
    }
    const rec = readRecord(home, name);
    if (!rec || fd === null || isLogOf(home, rec, ino) || attempt === 50) {
      return { fd, ino, id: rec?.id ?? '', ended: rec !== null && isTerminal(currentState(home, rec).status) };
    }
    closeSync(fd);
    sleepSync(2);
  }
}

/** What one call prints of each log (besides following it). */
export interface TailOptions {
  /** the last n lines; null for every line (the default with a cursor) */
  lines: number | null;
  since: Cursor | null;
  /** log bytes printed at most, over all jobs; Infinity for no cap */
  maxBytes: number;
  /** read each log's run id (for --json and --since) */
  identify: boolean;
  /** one line on stderr */
  note: (message: string) => void;
  /** one line on stderr: a run that started has no log this call can read (the command exits 1) */
  unreadable: (message: string) => void;
}

/**
 * Says why a run that has started shows no log, rather than print nothing as if the job had been
 * silent: the log was deleted, or something that is not a regular file (a link, a FIFO) stands at
 * its path. A run not started yet has no log to say anything of.
 */
function sayUnreadable(rec: JobRecord | null, path: string, opts: TailOptions): void {
  if (!rec || rec.started_at === null) return;
  let what = 'is gone';
  try {
    what = lstatSync(path).isFile() ? 'could not be opened' : 'is not a regular file, not read';
  } catch {}
  opts.unreadable(`${rec.name}: its log ${what}: ${path}`);
}

/**
 * The log opened at the log path; with none there, the current run's log as a rerun moves it
 * aside (NAME@ID.log) before it writes its own record: a rerun caught, or killed, between the two
 * still shows the current run's output. Else nothing, and sayUnreadable says why.
 */
function orKeptLog(home: Home, name: string, log: RunLog, opts: TailOptions): RunLog {
  const rec = log.fd === null ? readRecord(home, name) : null;
  if (!rec) return log;
  try {
    const kept = openLogOf(previousLogPath(home, name, rec.id), rec.id);
    return { ...kept, ended: isTerminal(currentState(home, rec).status) };
  } catch {
    sayUnreadable(rec, logPath(home, name), opts);
    return log;
  }
}

/** Where the output of one log starts, given its size and run; says on stderr what it leaves out. */
function windowStart(
  fd: number | null,
  size: number,
  name: string,
  run: string,
  opts: TailOptions,
  budget: number,
): number {
  let from = 0;
  const { since } = opts;
  if (since && since.id !== run) {
    opts.note(
      `${name}: the cursor is for run ${since.id}, the current run is ${run || 'none'}: printing from the start of ` +
        `its log`,
    );
  } else if (since && since.offset > size) {
    opts.note(
      `${name}: log truncated below the cursor (${size} bytes now, cursor at ${since.offset}): printing from its start`,
    );
  } else if (since) from = since.offset;
  if (fd === null) return size;
  const byLines = opts.lines === null ? from : lastLinesStart(fd, size, opts.lines, from);
  const start = newestLinesWithin(fd, byLines, size, budget);
  const windowFrom = since ? from : byLines;
  if (start > windowFrom) {
    const why = [
      since && byLines > from ? `-n ${opts.lines}` : '',
      start > byLines ? `--max-bytes ${opts.maxBytes}` : '',
    ];
    const end = opts.identify ? `; output ends at cursor ${run}:${size}` : '';
    opts.note(
      `${name}: left out ${start - windowFrom} bytes of older output (${why.filter(Boolean).join(', ')})${end}`,
    );
  }
  return start;
}

/** One job's share of what is left of the --max-bytes budget, split evenly between the jobs left. */
const shareOf = (left: number, jobsLeft: number) => (left === Infinity ? Infinity : Math.floor(left / jobsLeft));

/**
 * The last n lines of a file, whole, in memory: for callers that want a few short lines.
 * bgmon-tail itself streams them (printTail). `partial` is a last line without newline.
 */
export function lastLines(path: string, n: number): { lines: Buffer[]; size: number; partial: Buffer } {
  let fd: number;
  try {
    fd = openLogToRead(path);
  } catch {
    return { lines: [], size: 0, partial: Buffer.alloc(0) };
  }
  try {
    const size = fstatSync(fd).size;
    const start = lastLinesStart(fd, size, n);
    const all = Buffer.alloc(size - start);
    const got = readSync(fd, all, 0, all.length, start);
    const text = all.subarray(0, got);
    const lines: Buffer[] = [];
    let from = 0;
    for (let nl = text.indexOf(10); nl >= 0; nl = text.indexOf(10, from)) {
      lines.push(text.subarray(from, nl));
      from = nl + 1;
    }
    const partial = text.subarray(from);
    if (partial.length > 0) lines.push(partial);
    return { lines, size, partial };
  } finally {
    closeSync(fd);
  }
}

/**
 * Where tail's output goes: seek says which run's log, at which offset, the next bytes of a job
 * come from; then its log bytes in order (split anywhere, mid-line included), then endLine when
 * that output is complete, which ends a last line that has no newline. `final`: nothing will be
 * added to that log (its run has ended, or it was left), so a character cut at its end is whole.
 */
export interface TailSink {
  seek(name: string, id: string, offset: number): void;
  write(name: string, bytes: Buffer): void;
  endLine(name: string, final?: boolean): void;
}

/** Copies [from, to) of an open file to the sink in chunks; returns where it stopped (EOF). */
function copyRange(fd: number, from: number, to: number, name: string, sink: TailSink): number {
  const buf = scratch;
  let pos = from;
  while (pos < to) {
    const got = readSync(fd, buf, 0, Math.min(CHUNK, to - pos), pos);
    if (got === 0) break;
    pos += got;
    sink.write(name, buf.subarray(0, got));
  }
  return pos;
}

/** Opens a job's log: with its run when the caller needs ids, else just the file. */
function openLog(home: Home, name: string, identify: boolean): RunLog {
  if (identify) return openRunLog(home, name);
  try {
    return openLogOf(logPath(home, name), '');
  } catch {
    return { fd: null, ino: 0, id: '' };
  }
}

/**
 * Copies the part of a job's log that this call prints (see windowStart) to the sink, streamed
 * in bounded memory; returns where it started and ended (where following goes on).
 */
function printWindow(
  name: string,
  log: RunLog,
  opts: TailOptions,
  budget: number,
  sink: TailSink,
): { start: number; end: number } {
  const size = log.fd === null ? 0 : fstatSync(log.fd).size;
  const start = windowStart(log.fd, size, name, log.id, opts, budget);
  sink.seek(name, log.id, start);
  return { start, end: log.fd === null ? 0 : copyRange(log.fd, start, size, name, sink) };
}

/** bgmon-tail without -f: each job's log as it stands (see TailOptions), one job after another. */
export function printTail(home: Home, names: string[], opts: TailOptions, sink: TailSink): void {
  let left = opts.maxBytes;
  names.forEach((name, i) => {
    const log = orKeptLog(home, name, openLog(home, name, opts.identify), opts);
    try {
      const { start, end } = printWindow(name, log, opts, shareOf(left, names.length - i), sink);
      sink.endLine(name, log.ended === true);
      left -= end - start;
    } finally {
      if (log.fd !== null) closeSync(log.fd);
    }
  });
}

/**
 * Prints the kept logs of past runs (NAME@ID of a replaced run), as printTail prints a log, each
 * with its share of --max-bytes among `jobs` logs in all; returns the log bytes printed.
 */
export function printKeptLogs(
  home: Home,
  runs: JobRecord[],
  opts: TailOptions,
  sink: TailSink,
  jobs = runs.length,
): number {
  let used = 0;
  runs.forEach((rec, i) => {
    let log: RunLog = { fd: null, ino: 0, id: rec.id };
    // the path is ours (never the record's `log`, which a hand-made file could point anywhere)
    const path = previousLogPath(home, rec.name, rec.id);
    try {
      log = openLogOf(path, rec.id);
    } catch {
      sayUnreadable(rec, path, opts);
    }
    try {
      const { start, end } = printWindow(rec.name, log, opts, shareOf(opts.maxBytes - used, jobs - i), sink);
      sink.endLine(rec.name, true);
      used += end - start;
    } finally {
      if (log.fd !== null) closeSync(log.fd);
    }
  });
  return used;
}

/** tail's output: raw bytes with one job, else one `name | ` line or {"name","line",...} record per line. */
export function tailOutput(prefixed: boolean, json: boolean): TailSink {
  return prefixed || json ? framedOutput(json) : rawOutput();
}

/** The log's bytes exactly as written, an unfinished line included, flushed as they come. */
function rawOutput(): TailSink {
  const midLine = new Set<string>();
  return {
    seek() {},
    write(name, bytes) {
      if (bytes.length === 0) return;
      out(bytes);
      if (bytes[bytes.length - 1] === 10) midLine.delete(name);
      else midLine.add(name);
    },
    endLine(name) {
      if (midLine.delete(name)) out(NL);
    },
  };
}

/** The unfinished line of one job: a buffer that grows up to MAX_LINE_BYTES, filled to len; start is its log offset. */
interface Held {
  buf: Buffer;
  len: number;
  start: number;
}

/** Where the next bytes of a job come from. */
interface Position {
  id: string;
  next: number;
}

/**
 * One output line per log line, held until its newline (or the job's end) so jobs never
 * interleave mid-line. What is held is bounded: beyond MAX_LINE_BYTES a line is printed in
 * pieces, each cut on a UTF-8 character boundary. A --json record carries the run id and the
 * offset just past what it holds (past the newline), and `partial: true` when that is no newline.
 */
function framedOutput(json: boolean): TailSink {
  const held = new Map<string, Held>();
  const positions = new Map<string, Position>();
  const { push, flush } = batchedOut();
  const emit = (name: string, line: Buffer, offset: number, partial: boolean) => {
    if (!json && line.length >= CHUNK) {
      // a long line goes out as it is, not copied once more behind its prefix
      flush();
      out(`${name} | `);
      out(line);
      out(NL);
      return;
    }
    const id = positions.get(name)?.id ?? '';
    push(json ? jsonLine(name, id, line, offset, partial) : Buffer.concat([Buffer.from(`${name} | `), line, NL]));
  };
  const hold = (name: string, bytes: Buffer, at: number) => {
    let h = held.get(name);
    if (!h) held.set(name, (h = { buf: Buffer.allocUnsafe(Math.min(CHUNK, MAX_LINE_BYTES)), len: 0, start: at }));
    holdBytes(h, bytes, (piece, end) => emit(name, piece, end, true));
  };
  const release = (name: string, newline: boolean, final = true) => {
    const h = held.get(name);
    if (!h) return;
    held.delete(name);
    // a record is text: an unfinished line of a log that may grow stops before a character still
    // being written, and its offset with it, so the next call prints that character whole
    const len = json && !newline && !final ? wholeUtf8Length(h.buf, h.len) : h.len;
    if (len > 0 || newline) emit(name, h.buf.subarray(0, len), h.start + len + (newline ? 1 : 0), !newline);
  };
  return {
    seek(name, id, offset) {
      positions.set(name, { id, next: offset });
    },
    write(name, bytes) {
      const pos = positions.get(name) ?? { id: '', next: 0 };
      positions.set(name, pos);
      const base = pos.next;
      let from = 0;
      for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, from)) {
        const line = bytes.subarray(from, nl);
        if (!held.has(name) && line.length <= MAX_LINE_BYTES) emit(name, line, base + nl + 1, false);
        else {
          hold(name, line, base + from);
          release(name, true);
        }
        from = nl + 1;
      }
      if (from < bytes.length) hold(name, bytes.subarray(from), base + from);
      pos.next = base + bytes.length;
      flush();
    },
    endLine(name, final) {
      release(name, false, final);
      flush();
    },
  };
}

/** Output lines gathered into writes of up to CHUNK bytes (one write per line costs a syscall each). */
function batchedOut(): { push(text: Buffer): void; flush(): void } {
  let batch: Buffer[] = [];
  let bytes = 0;
  const flush = () => {
    if (batch.length > 0) out(batch.length === 1 ? batch[0] : Buffer.concat(batch));
    batch = [];
    bytes = 0;
  };
  const push = (text: Buffer) => {
    if (bytes + text.length > CHUNK) flush();
    batch.push(text);
    bytes += text.length;
  };
  return { push, flush };
}

function jsonLine(name: string, id: string, line: Buffer, offset: number, partial: boolean): Buffer {
  const rec = partial
    ? { name, id, line: line.toString('utf8'), offset, partial }
    : { name, id, line: line.toString('utf8'), offset };
  return Buffer.from(JSON.stringify(rec) + '\n');
}

/**
 * Appends bytes to an unfinished line; a full buffer is printed as a piece (with its end offset)
 * before more is added.
 */
function holdBytes(h: Held, bytes: Buffer, emitPiece: (piece: Buffer, end: number) => void): void {
  for (let piece = bytes; piece.length > 0; ) {
    if (h.len === MAX_LINE_BYTES) {
      // full, and the line goes on: print a piece, keeping back a character it would split
      const cut = utf8Cut(h.buf, h.len, piece[0]);
      emitPiece(h.buf.subarray(0, cut), h.start + cut);
      h.buf.copyWithin(0, cut, h.len);
      h.len -= cut;
      h.start += cut;
    }
    if (h.len + piece.length > h.buf.length && h.buf.length < MAX_LINE_BYTES) {
      const bigger = Buffer.allocUnsafe(Math.min(MAX_LINE_BYTES, Math.max(2 * h.buf.length, h.len + piece.length)));
      h.buf.copy(bigger, 0, 0, h.len);
      h.buf = bigger;
    }
    const n = piece.copy(h.buf, h.len, 0, Math.min(piece.length, MAX_LINE_BYTES - h.len));
    h.len += n;
    piece = piece.subarray(n);
  }
}

/**
 * How many of the first len bytes remain without the start of a UTF-8 character that more bytes
 * may still complete. A byte that can begin no character (0xC0, 0xC1, 0xF5-0xFF, a stray
 * continuation) is kept: no later write makes it whole, and holding it back would hold the
 * cursor there for ever.
 */
function wholeUtf8Length(buf: Buffer, len: number): number {
  for (let i = len - 1; i >= 0 && i >= len - 3; i--) {
    const b = buf[i];
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead
    const need = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 1;
    return i + need > len ? i : len;
  }
  return len;
}

/** Where to cut a full buffer (of len bytes, followed by `next`) without splitting a UTF-8 character. */
function utf8Cut(buf: Buffer, len: number, next: number): number {
  for (let cut = len; cut > len - 4 && cut > 0; cut--) {
    if (((cut === len ? next : buf[cut]) & 0xc0) !== 0x80) return cut;
  }
  return len;
}

interface Followed {
  name: string;
  path: string;
  /** the run whose end was last seen ('' until then) */
  id: string;
  fd: number | null;
  ino: number;
  /** the run that wrote the open log */
  run: string;
  offset: number;
  ended: boolean;
}

const RECHECK_MS = 250;

/** Opens a job's log and copies what this call prints of it; following goes on from the size seen here. */
function openFollowed(
  home: Home,
  name: string,
  opts: TailOptions,
  budget: number,
  sink: TailSink,
): { job: Followed; used: number } {
  const log = orKeptLog(home, name, openRunLog(home, name), opts);
  const job: Followed = {
    name,
    path: logPath(home, name),
    id: '',
    fd: log.fd,
    ino: log.ino,
    run: log.id,
    offset: 0,
    ended: false,
  };
  // a queued job's log appears when it starts; a cursor is still checked against its run
  const { start, end } = printWindow(name, log, opts, budget, sink);
  job.offset = end;
  return { job, used: end - start };
}

/**
 * Copies what the job's open log holds past the offset, up to `limit` bytes (to its end when
 * Infinity: reads go on until one returns nothing, not up to a size seen earlier, since the job
 * may still be writing). Returns whether the limit cut it short.
 */
function drain(job: Followed, limit: number, sink: TailSink, note: (message: string) => void): boolean {
  if (job.fd === null) return false;
  const size = fstatSync(job.fd).size;
  if (size < job.offset) {
    note(`${job.name}: log truncated (${size} bytes now, was ${job.offset}): printing from its start`);
    sink.endLine(job.name, true);
    job.offset = 0;
    sink.seek(job.name, job.run, 0);
  }
  const buf = scratch;
  for (let copied = 0; copied < limit; ) {
    const got = readSync(job.fd, buf, 0, CHUNK, job.offset);
    if (got === 0) return false;
    job.offset += got;
    copied += got;
    sink.write(job.name, buf.subarray(0, got));
  }
  return true;
}

/**
 * Makes job.fd the log at the job's path: a replaced log (a rerun moved it aside) is first read
 * to its end. The new log is not followed when the run just seen ended and a later run owns it.
 */
function followPath(
  home: Home,
  job: Followed,
  endedId: string | null,
  sink: TailSink,
  note: (m: string) => void,
): void {
  const ino = inodeAt(job.path);
  if (job.fd !== null && ino === job.ino) return;
  // deleted, or a link or FIFO put in its place: the job still writes to the log we hold, so it
  // is read on (a rerun's new log, always a regular file, is switched to once it is there)
  if (job.fd !== null && !isFile(job.path)) return;
  if (job.fd !== null) {
    drain(job, Infinity, sink, note);
    sink.endLine(job.name, true);
    closeSync(job.fd);
    job.fd = null;
  }
  if (ino === null) return;
  const log = openRunLog(home, job.name);
  if (log.fd !== null && endedId !== null && log.id !== endedId) {
    closeSync(log.fd);
    return;
  }
  Object.assign(job, { fd: log.fd, ino: log.ino, run: log.id, offset: 0 });
  if (log.fd !== null) sink.seek(job.name, log.id, 0);
}

/**
 * One round for one job. The job's state is read BEFORE its log: once a run is seen ended,
 * everything it wrote is already in the file, so reading the log to its end after that loses
 * nothing. Returns whether unread output is left for another round.
 */
function followRound(home: Home, job: Followed, sink: TailSink, note: (m: string) => void): boolean {
  const rec = readRecord(home, job.name);
  if (job.ended && (rec?.id ?? '') === job.id) return false;
  job.ended = false; // a rerun is followed while other jobs still run
  if (!rec) {
    // removed (bgmon-rm) while followed: nothing more will come
    drain(job, Infinity, sink, note);
    return finishRun(job, '', sink);
  }
  const cur = currentState(home, rec);
  const ended = isTerminal(cur.status);
  // The log at the path belongs to the run read above or a later one: a log exists before
  // the record that names it. While the open log's run is the current one, its descriptor is
  // followed (as tail -f does): the job writes there even if the file was moved (rotated) away.
  if (job.fd === null || job.run !== cur.id) followPath(home, job, ended ? cur.id : null, sink, note);
  if (ended) {
    drain(job, Infinity, sink, note);
    return finishRun(job, cur.id, sink);
  }
  job.id = cur.id;
  return drain(job, ROUND_BYTES, sink, note);
}

/** A round that only reads what a followed job's open log gained. */
function readRound(job: Followed, sink: TailSink, note: (m: string) => void): boolean {
  return job.ended ? false : drain(job, ROUND_BYTES, sink, note);
}

function finishRun(job: Followed, id: string, sink: TailSink): false {
  sink.endLine(job.name, true);
  job.id = id;
  job.ended = true;
  return false;
}

/**
 * Prints what printTail would of each job, then follows new output as it is written until every
 * job has ended. A write to a log (inotify on logs/) only reads logs; a change in jobs/ (an end, a
 * start, a rerun) or the slow re-check (for ends no file announces) also reads every job's state:
 * reading records and /proc on each of a busy log's writes would cost CPU and memory for nothing.
 * A log replaced by a rerun of the same name is drained, then followed from its new start.
 */
export function followLogs(home: Home, names: string[], opts: TailOptions, sink: TailSink): Promise<void> {
  let left = opts.maxBytes;
  const jobs = names.map((name, i) => {
    const { job, used } = openFollowed(home, name, opts, shareOf(left, names.length - i), sink);
    left -= used;
    return job;
  });
  const { note } = opts;
  return new Promise((resolve, reject) => {
    const watchers: FSWatcher[] = [];
    let interval: NodeJS.Timeout | null = null;
    let queued = false;
    let wantStates = false;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      watchers.forEach((w) => w.close());
      if (interval) clearInterval(interval);
      for (const job of jobs) if (job.fd !== null) closeSync(job.fd);
      if (err) reject(err);
      else resolve();
    };
    const round = () => {
      queued = false;
      const states = wantStates;
      wantStates = false;
      if (done) return;
      try {
        let more = false;
        for (const job of jobs)
          more = (states ? followRound(home, job, sink, note) : readRound(job, sink, note)) || more;
        if (jobs.every((j) => j.ended)) finish();
        else if (more) request(false);
      } catch (err) {
        finish(err);
      }
    };
    // a burst of file events makes one round, not one per event
    const request = (states: boolean) => {
      if (done) return;
      wantStates ||= states;
      if (queued) return;
      queued = true;
      setImmediate(round);
    };
    try {
      watchers.push(
        watch(home.logs, () => request(false)),
        watch(home.jobs, () => request(true)),
      );
    } catch (err) {
      return finish(err);
    }
    interval = setInterval(() => request(true), RECHECK_MS);
    request(true);
  });
}
