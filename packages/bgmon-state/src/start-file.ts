import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileTimeIso, notBefore } from './fsutil';
import type { JobRecord } from './record';

/*
 * A handed-off run's start file, run/queues/<Q>.runs/<SEQ>/start (see handoff.ts): written by
 * the job itself before its command runs; every reader of a QUEUED record of a queue looks for
 * it, so a run the hand-off started reads RUNNING everywhere although its record file still says
 * QUEUED until its end is folded.
 */

export const runsDir = (root: string, queue: string) => join(root, 'run', 'queues', `${queue}.runs`);
export const runDir = (root: string, queue: string, seq: number) => join(runsDir(root, queue), String(seq));

export interface Start {
  pid: number;
  starttime: number;
  bootId: string;
  startedAt: string;
  supPid: number;
  supStarttime: number;
}

const START_LINE = /^(\d{1,9}) (\d{1,20}) ([0-9a-f-]{36}) (\d{1,15}) (\d{1,9}) (\d{1,20})\n$/;
const startBuf = Buffer.alloc(256);

/** A run directory's start: its line, 'none' (it never runs), 'partial' (being written), or null (none yet). */
export function readStart(dir: string): Start | 'none' | 'partial' | null {
  let fd: number;
  try {
    fd = openSync(join(dir, 'start'), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    // a link planted there is nobody's start: the run never starts by hand-off
    return (err as NodeJS.ErrnoException).code === 'ELOOP' ? 'none' : null;
  }
  let text: string;
  let st: Stats;
  try {
    st = fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) return 'none';
    text = startBuf.toString('latin1', 0, readSync(fd, startBuf, 0, startBuf.length, 0));
  } catch {
    return 'partial';
  } finally {
    closeSync(fd);
  }
  if (text === 'none\n') return 'none';
  const m = START_LINE.exec(text);
  if (!m) return text.length > 0 && !text.endsWith('\n') ? 'partial' : text.length === 0 ? 'partial' : 'none';
  return {
    pid: Number(m[1]),
    starttime: Number(m[2]),
    bootId: m[3],
    // the file's mtime, not its uptime: one value on every read (boot time from /proc/uptime,
    // in 1/100 s, moves by up to 10 ms from one reader to the next); at most now, as its uptime was
    startedAt: fileTimeIso(st),
    supPid: Number(m[5]),
    supStarttime: Number(m[6]),
  };
}

/**
 * Whether a run directory was prepared for this run (it holds id.<ID>): a SEQ is reused when a
 * lost queue file is rebuilt, so the directory at a record's SEQ may be an earlier run's.
 */
export function isRunDirOf(dir: string, id: string): boolean {
  if (id.includes('/')) return false;
  try {
    return lstatSync(join(dir, `id.${id}`)).isFile();
  } catch {
    return false;
  }
}

/** A QUEUED record whose run the hand-off started, as the RUNNING record Node would have written. */
export function withStart(recordFile: string, rec: JobRecord): JobRecord {
  if (rec.status !== 'QUEUED' || rec.queue == null || !Number.isSafeInteger(rec.queue_seq)) return rec;
  const dir = runDir(dirname(dirname(recordFile)), rec.queue, rec.queue_seq!);
  const s = readStart(dir);
  // another run's start (its directory still in place at a reused SEQ) says nothing of this one
  if (s === null || typeof s === 'string' || !isRunDirOf(dir, rec.id)) return rec;
  return {
    ...rec,
    status: 'RUNNING',
    pid: s.pid,
    started_at: notBefore(s.startedAt, rec.created_at),
    boot_id: s.bootId,
    starttime: s.starttime,
    sup_pid: s.supPid,
    sup_starttime: s.supStarttime,
  };
}
