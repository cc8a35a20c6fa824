import { closeSync, fstatSync, openSync, readSync, statSync, watch, type FSWatcher } from 'node:fs';
import { logPath, type Home } from './paths';
import { isTerminal, readRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { out } from './cli';

const CHUNK = 64 * 1024;

/**
 * The last n lines of a file, read backwards from its end in 64 KiB chunks: the cost depends
 * on n and the line lengths, never on the file's size. A last line without a newline counts.
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
    const chunks: Buffer[] = [];
    let pos = size;
    let newlines = 0;
    let endsWithNewline: boolean | null = null;
    while (pos > 0 && newlines <= n) {
      const len = Math.min(CHUNK, pos);
      pos -= len;
      const buf = Buffer.allocUnsafe(len);
      const got = readSync(fd, buf, 0, len, pos);
      const chunk = buf.subarray(0, got);
      if (endsWithNewline === null) endsWithNewline = chunk[chunk.length - 1] === 10;
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) newlines++;
      chunks.unshift(chunk);
    }
    const all = Buffer.concat(chunks);
    const parts: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < all.length; i++) {
      if (all[i] === 10) {
        parts.push(all.subarray(start, i));
        start = i + 1;
      }
    }
    const partial = all.subarray(start);
    if (partial.length > 0) parts.push(partial);
    // Without reaching the file's start, the first part may be the tail end of a longer line.
    const whole = pos > 0 ? parts.slice(1) : parts;
    return { lines: n === 0 ? [] : whole.slice(-n), size, partial: endsWithNewline === false ? partial : Buffer.alloc(0) };
  } finally {
    closeSync(fd);
  }
}

export type LineSink = (name: string, line: Buffer) => void;

interface Followed {
  name: string;
  path: string;
  id: string;
  fd: number | null;
  ino: number;
  offset: number;
  pending: Buffer;
  ended: boolean;
}

const RECHECK_MS = 250;

/**
 * Prints the last n lines of each job, then follows new output as it is written (inotify on
 * logs/ and jobs/, plus a slow re-check for ends no file announces) until every job has ended.
 * A log replaced by a rerun of the same name is drained, then followed from its new start.
 */
export function followLogs(home: Home, names: string[], n: number, sink: LineSink): Promise<void> {
  const jobs: Followed[] = names.map((name) => {
    const path = logPath(home, name);
    const { lines, size, partial } = lastLines(path, n);
    const complete = partial.length > 0 ? lines.slice(0, -1) : lines;
    for (const line of complete) sink(name, line);
    const job: Followed = { name, path, id: readRecord(home, name)?.id ?? '', fd: null, ino: 0, offset: 0, pending: Buffer.alloc(0), ended: false };
    open(job);
    // the held-back partial line is read again with what follows it
    job.offset = size - partial.length;
    return job;
  });

  function open(job: Followed): void {
    try {
      job.fd = openSync(job.path, 'r');
      job.ino = fstatSync(job.fd).ino;
      job.offset = 0;
      job.pending = Buffer.alloc(0);
    } catch {
      job.fd = null;
    }
  }

  function drain(job: Followed): void {
    if (job.fd === null) return;
    const size = fstatSync(job.fd).size;
    if (size < job.offset) job.offset = 0; // truncated in place
    const buf = Buffer.allocUnsafe(CHUNK);
    while (job.offset < size) {
      const got = readSync(job.fd, buf, 0, Math.min(CHUNK, size - job.offset), job.offset);
      if (got === 0) break;
      job.offset += got;
      let data = Buffer.concat([job.pending, buf.subarray(0, got)]);
      let nl: number;
      while ((nl = data.indexOf(10)) >= 0) {
        sink(job.name, Buffer.from(data.subarray(0, nl)));
        data = data.subarray(nl + 1);
      }
      job.pending = Buffer.from(data);
    }
  }

  function readNew(job: Followed): void {
    if (job.fd === null) open(job); // a queued job's log appears when it starts
    if (job.fd === null) return;
    drain(job);
    let ino = job.ino;
    try {
      ino = statSync(job.path).ino;
    } catch {}
    if (ino !== job.ino) {
      closeSync(job.fd);
      open(job);
      drain(job);
    }
  }

  function flush(job: Followed): void {
    if (job.pending.length > 0) sink(job.name, job.pending);
    job.pending = Buffer.alloc(0);
  }

  return new Promise((resolve, reject) => {
    const watchers: FSWatcher[] = [];
    let interval: NodeJS.Timeout | null = null;
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
    const check = () => {
      if (done) return;
      try {
        for (const job of jobs) {
          const rec = readRecord(home, job.name);
          // an ended job stays followed only if it is rerun while others still run
          if (job.ended && rec?.id === job.id) continue;
          job.ended = false;
          readNew(job);
          if (!rec) {
            // removed (bgmon-rm) while followed: nothing more will come
            flush(job);
            job.ended = true;
            continue;
          }
          const cur: JobRecord = currentState(home, rec);
          // readNew above ran after the record was read, so it has drained everything written
          // before that state, including a rerun's switch to the new log (an inode change)
          job.id = cur.id;
          if (isTerminal(cur.status)) {
            flush(job);
            job.ended = true;
          }
        }
        if (jobs.every((j) => j.ended)) finish();
      } catch (err) {
        finish(err);
      }
    };
    try {
      watchers.push(watch(home.logs, () => check()), watch(home.jobs, () => check()));
    } catch (err) {
      return finish(err);
    }
    interval = setInterval(check, RECHECK_MS);
    check();
  });
}

/** Where tail's lines go: raw bytes, `name | ` prefixed with several jobs, or {"name","line"}. */
export function tailOutput(prefixed: boolean, json: boolean): LineSink {
  return (name, line) => {
    if (json) out(JSON.stringify({ name, line: line.toString('utf8') }) + '\n');
    else out(prefixed ? Buffer.concat([Buffer.from(`${name} | `), line, NL]) : Buffer.concat([line, NL]));
  };
}
const NL = Buffer.from('\n');
