import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './errors';
import { readOwnFile, writeFileAtomic } from './fsutil';
import { lock, unlock, type Lock } from './lock';
import { isValidName } from './names';
import type { Home } from './paths';
import { listNames, readRecord, type JobRecord } from './record';
import { runState } from './run-state';

/*
 * Named queues with slots (--queue Q --slots N). Each queue is one small file,
 * run/queues/<Q>.json: {"slots": N, "next": K, "running": [[name, id], ...]}, replaced
 * atomically under the queue's own lock. `next` numbers submissions (FIFO order, the record's
 * queue_seq); `running` lists the runs the queue has started, so counting what occupies a slot
 * reads a handful of records, not every record in the home. A run is added to `running` before
 * it is launched and dropped once it is found ended, so a process killed in between can only
 * make the queue count one run too many for a moment, never too few. A missing or unreadable
 * file is rebuilt from the records (every run of the queue that is RUNNING or PAUSED).
 */

export interface QueueFile {
  slots: number;
  next: number;
  running: [string, string][];
}

export const MAX_SLOTS = 100_000;
const queueDir = (home: Home) => join(home.run, 'queues');
const queueFilePath = (home: Home, queue: string) => join(queueDir(home), `${queue}.json`);
// '@' cannot occur in a job name, so the queue's lock (run/<Q>@queue.lock) never is a job's.
export const queueLockName = (queue: string) => `${queue}@queue`;

export function assertQueueName(queue: unknown, flag = '--queue'): string {
  if (!isValidName(queue)) {
    const rule = 'a queue name is 1-128 of [A-Za-z0-9._-], starting with a letter or digit';
    throw new UsageError(`${flag} ${JSON.stringify(queue)}: ${rule}`);
  }
  return queue;
}

export function parseSlots(value: unknown, flag = '--slots'): number {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (n >= 1 && n <= MAX_SLOTS) return n;
  throw new UsageError(`${flag} ${JSON.stringify(value)}: expected a whole number from 1 to ${MAX_SLOTS}`);
}

const isMember = (x: unknown) => Array.isArray(x) && x.length === 2 && isValidName(x[0]) && typeof x[1] === 'string';

export function readQueueFile(home: Home, queue: string): QueueFile | null {
  try {
    const q = JSON.parse(readOwnFile(queueFilePath(home, queue)));
    const ok =
      Number.isSafeInteger(q.slots) &&
      q.slots >= 1 &&
      Number.isSafeInteger(q.next) &&
      q.next >= 0 &&
      Array.isArray(q.running) &&
      q.running.every(isMember);
    return ok ? { slots: q.slots, next: q.next, running: q.running } : null;
  } catch {
    return null;
  }
}

export function writeQueueFile(home: Home, queue: string, file: QueueFile): void {
  try {
    mkdirSync(queueDir(home), { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  writeFileAtomic(queueFilePath(home, queue), JSON.stringify(file) + '\n');
}

export const lockQueue = (home: Home, queue: string): Promise<Lock> => lock(home, queueLockName(queue));

/** Whether the run still holds a slot: RUNNING or PAUSED now (a run not yet launched holds none). */
function holdsSlot(home: Home, name: string, id: string): boolean {
  let rec: JobRecord | null = null;
  try {
    rec = readRecord(home, name);
  } catch {
    return false;
  }
  if (!rec || rec.id !== id || rec.status === 'QUEUED') return false;
  const now = runState(home, rec).status;
  return now === 'RUNNING' || now === 'PAUSED';
}

/**
 * A lost queue file rebuilt from the records themselves: every run of the queue that is RUNNING
 * or PAUSED, and the next number past every submission still on record (a new job must not pass
 * the jobs already waiting). The slots are not in any record: 1, until a --slots sets them again.
 */
function scanQueue(home: Home, queue: string): QueueFile {
  const file: QueueFile = { slots: 1, next: 0, running: [] };
  for (const name of listNames(home)) {
    let rec: JobRecord | null = null;
    try {
      rec = readRecord(home, name);
    } catch {}
    if (rec?.queue !== queue) continue;
    if (Number.isSafeInteger(rec.queue_seq)) file.next = Math.max(file.next, rec.queue_seq! + 1);
    if (rec.status !== 'QUEUED' && holdsSlot(home, name, rec.id)) file.running.push([name, rec.id]);
  }
  return file;
}

/** The queue's file with `running` pruned to the runs that still hold a slot. */
export function queueNow(home: Home, queue: string): QueueFile {
  const file = readQueueFile(home, queue);
  if (!file) return scanQueue(home, queue);
  return { ...file, running: file.running.filter(([name, id]) => holdsSlot(home, name, id)) };
}

/**
 * Numbers `count` new submissions to the queue (their FIFO order) and applies --slots when given;
 * returns the first number. Taken before any job's own lock: the queue's lock is always taken
 * first, so two commands can never wait for each other.
 */
export async function reserveQueueSeq(
  home: Home,
  queue: string,
  count: number,
  slots: number | undefined,
): Promise<number> {
  const held = await lockQueue(home, queue);
  try {
    const file = queueNow(home, queue);
    writeQueueFile(home, queue, { ...file, slots: slots ?? file.slots, next: file.next + count });
    return file.next;
  } finally {
    unlock(held);
  }
}
