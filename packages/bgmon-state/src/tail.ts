import { closeSync, fstatSync, openSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import { logPath, type Home } from './paths';
import { isTerminal, readRecord } from './record';
import { currentState } from './classify';
import { out } from './stdout';

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
 * newline counts as a line.
 */
export function lastLinesStart(fd: number, size: number, n: number): number {
  if (n === 0 || size === 0) return size;
  const buf = Buffer.allocUnsafe(CHUNK);
  // a newline that ends the file closes the last line; it does not begin another
  let end = readSync(fd, buf, 0, 1, size - 1) === 1 && buf[0] === 10 ? size - 1 : size;
  let seen = 0;
  while (end > 0) {
    const pos = Math.max(0, end - CHUNK);
    const got = readSync(fd, buf, 0, end - pos, pos);
    for (let i = got; i > 0; ) {
      i = buf.lastIndexOf(10, i - 1);
      if (i < 0) break;
      if (++seen === n) return pos + i + 1;
    }
    end = pos;
  }
  return 0;
}

/**
 * The last n lines of a file, whole, in memory: for callers that want a few short lines.
 * bgmon-tail itself streams them (printLastLines). `partial` is a last line without newline.
 */
export function lastLines(path: string, n: number): { lines: Buffer[]; size: number; partial: Buffer } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
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
 * Where tail's output goes: a job's log bytes in order (split anywhere, mid-line included),
 * then endLine when that output is complete, which ends a last line that has no newline.
 */
export interface TailSink {
  write(name: string, bytes: Buffer): void;
  endLine(name: string): void;
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

/** bgmon-tail -n: the last n lines of a job's log as it stands, streamed in bounded memory. */
export function printLastLines(home: Home, name: string, n: number, sink: TailSink): void {
  let fd: number;
  try {
    fd = openSync(logPath(home, name), 'r');
  } catch {
    return;
  }
  try {
    const size = fstatSync(fd).size;
    copyRange(fd, lastLinesStart(fd, size, n), size, name, sink);
    sink.endLine(name);
  } finally {
    closeSync(fd);
  }
}

/** tail's output: raw bytes with one job, else one `name | ` line or {"name","line"} record per line. */
export function tailOutput(prefixed: boolean, json: boolean): TailSink {
  return prefixed || json ? framedOutput(json) : rawOutput();
}

/** The log's bytes exactly as written, an unfinished line included, flushed as they come. */
function rawOutput(): TailSink {
  const midLine = new Set<string>();
  return {
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

/** The unfinished line of one job: a buffer that grows up to MAX_LINE_BYTES, filled to len. */
interface Held {
  buf: Buffer;
  len: number;
}

/**
 * One output line per log line, held until its newline (or the job's end) so jobs never
 * interleave mid-line. What is held is bounded: beyond MAX_LINE_BYTES a line is printed in
 * pieces, each cut on a UTF-8 character boundary.
 */
function framedOutput(json: boolean): TailSink {
  const held = new Map<string, Held>();
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = () => {
    if (batch.length > 0) out(batch.length === 1 ? batch[0] : Buffer.concat(batch));
    batch = [];
    batchBytes = 0;
  };
  const emit = (name: string, line: Buffer) => {
    if (!json && line.length >= CHUNK) {
      // a long line goes out as it is, not copied once more behind its prefix
      flush();
      out(`${name} | `);
      out(line);
      out(NL);
      return;
    }
    const text = json
      ? Buffer.from(JSON.stringify({ name, line: line.toString('utf8') }) + '\n')
      : Buffer.concat([Buffer.from(`${name} | `), line, NL]);
    if (batchBytes + text.length > CHUNK) flush();
    batch.push(text);
    batchBytes += text.length;
  };
  const hold = (name: string, bytes: Buffer) => {
    const h = held.get(name) ?? { buf: Buffer.allocUnsafe(Math.min(CHUNK, MAX_LINE_BYTES)), len: 0 };
    held.set(name, h);
    holdBytes(h, bytes, (piece) => emit(name, piece));
  };
  const release = (name: string) => {
    const h = held.get(name);
    held.delete(name);
    if (h) emit(name, h.buf.subarray(0, h.len));
  };
  return {
    write(name, bytes) {
      let from = 0;
      for (let nl = bytes.indexOf(10); nl >= 0; nl = bytes.indexOf(10, from)) {
        const line = bytes.subarray(from, nl);
        if (!held.has(name) && line.length <= MAX_LINE_BYTES) emit(name, line);
        else {
          hold(name, line);
          release(name);
        }
        from = nl + 1;
      }
      if (from < bytes.length) hold(name, bytes.subarray(from));
      flush();
    },
    endLine(name) {
      release(name);
      flush();
    },
  };
}

/** Appends bytes to an unfinished line; a full buffer is printed as a piece before more is added. */
function holdBytes(h: Held, bytes: Buffer, emitPiece: (piece: Buffer) => void): void {
  for (let piece = bytes; piece.length > 0; ) {
    if (h.len === MAX_LINE_BYTES) {
      // full, and the line goes on: print a piece, keeping back a character it would split
      const cut = utf8Cut(h.buf, h.len, piece[0]);
      emitPiece(h.buf.subarray(0, cut));
      h.buf.copyWithin(0, cut, h.len);
      h.len -= cut;
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
  offset: number;
  ended: boolean;
}

const RECHECK_MS = 250;

function inodeAt(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/** Opens a job's log and copies its last n lines; following goes on from the size seen here. */
function openFollowed(home: Home, name: string, n: number, sink: TailSink): Followed {
  const job: Followed = { name, path: logPath(home, name), id: '', fd: null, ino: 0, offset: 0, ended: false };
  try {
    job.fd = openSync(job.path, 'r');
  } catch {
    return job; // a queued job's log appears when it starts
  }
  const st = fstatSync(job.fd);
  job.ino = st.ino;
  job.offset = copyRange(job.fd, lastLinesStart(job.fd, st.size, n), st.size, name, sink);
  return job;
}

/**
 * Copies what the job's open log holds past the offset, up to `limit` bytes (to its end when
 * Infinity: reads go on until one returns nothing, not up to a size seen earlier, since the job
 * may still be writing). Returns whether the limit cut it short.
 */
function drain(job: Followed, limit: number, sink: TailSink): boolean {
  if (job.fd === null) return false;
  if (fstatSync(job.fd).size < job.offset) {
    sink.endLine(job.name); // truncated in place: start again from its beginning
    job.offset = 0;
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
 * to its end. The new log is not opened when the run just seen ended and a later run owns it.
 */
function followPath(home: Home, job: Followed, endedId: string | null, sink: TailSink): void {
  const ino = inodeAt(job.path);
  if (job.fd !== null && ino === job.ino) return;
  if (job.fd !== null) {
    drain(job, Infinity, sink);
    sink.endLine(job.name);
    closeSync(job.fd);
    job.fd = null;
  }
  if (ino === null) return;
  if (endedId !== null && readRecord(home, job.name)?.id !== endedId) return;
  try {
    job.fd = openSync(job.path, 'r');
    job.ino = fstatSync(job.fd).ino;
    job.offset = 0;
  } catch {
    job.fd = null;
  }
}

/**
 * One round for one job. The job's state is read BEFORE its log: once a run is seen ended,
 * everything it wrote is already in the file, so reading the log to its end after that loses
 * nothing. Returns whether unread output is left for another round.
 */
function followRound(home: Home, job: Followed, sink: TailSink): boolean {
  const rec = readRecord(home, job.name);
  if (job.ended && (rec?.id ?? '') === job.id) return false;
  job.ended = false; // a rerun is followed while other jobs still run
  if (!rec) {
    // removed (bgmon-rm) while followed: nothing more will come
    drain(job, Infinity, sink);
    return finishRun(job, '', sink);
  }
  const cur = currentState(home, rec);
  const ended = isTerminal(cur.status);
  // The log at the path belongs to the run read above or a later one: a log exists before
  // the record that names it.
  followPath(home, job, ended ? cur.id : null, sink);
  if (ended) {
    drain(job, Infinity, sink);
    return finishRun(job, cur.id, sink);
  }
  job.id = cur.id;
  return drain(job, ROUND_BYTES, sink);
}

/** A round that only reads what a followed job's open log gained. */
function readRound(job: Followed, sink: TailSink): boolean {
  return job.ended ? false : drain(job, ROUND_BYTES, sink);
}

function finishRun(job: Followed, id: string, sink: TailSink): false {
  sink.endLine(job.name);
  job.id = id;
  job.ended = true;
  return false;
}

/**
 * Prints the last n lines of each job, then follows new output as it is written until every job
 * has ended. A write to a log (inotify on logs/) only reads logs; a change in jobs/ (an end, a
 * start, a rerun) or the slow re-check (for ends no file announces) also reads every job's state:
 * reading records and /proc on each of a busy log's writes would cost CPU and memory for nothing.
 * A log replaced by a rerun of the same name is drained, then followed from its new start.
 */
export function followLogs(home: Home, names: string[], n: number, sink: TailSink): Promise<void> {
  const jobs = names.map((name) => openFollowed(home, name, n, sink));
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
        for (const job of jobs) more = (states ? followRound(home, job, sink) : readRound(job, sink)) || more;
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
      watchers.push(watch(home.logs, () => request(false)), watch(home.jobs, () => request(true)));
    } catch (err) {
      return finish(err);
    }
    interval = setInterval(() => request(true), RECHECK_MS);
    request(true);
  });
}
