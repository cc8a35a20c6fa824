import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './errors';
import { readOwnFile, writeFileAtomic } from './fsutil';
import { lock, unlock, type Lock } from './lock';
import { isValidName } from './names';
import type { Home } from './paths';
import { isTerminal, listNames, readRecord, type JobRecord } from './record';
import { readEnd } from './end';
import { isSameProcess } from './proc';
import { handOffHolders, writeSlotsFile, type Holder } from './handoff';

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
  /** the runs Node launched: name, id and, since the hand-off, the slot it gave them */
  running: Member[];
}
type Member = [string, string] | [string, string, number];

/** A queue as it stands: its file, and every supervisor holding a slot, with its slot and run's SEQ. */
export interface QueueNow extends QueueFile {
  holders: Map<string, Holder>;
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

const isMember = (x: unknown) =>
  Array.isArray(x) &&
  (x.length === 2 || (x.length === 3 && Number.isSafeInteger(x[2]))) &&
  isValidName(x[0]) &&
  typeof x[1] === 'string';

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
  const { slots, next, running } = file;
  writeFileAtomic(queueFilePath(home, queue), JSON.stringify({ slots, next, running }) + '\n');
}

export const lockQueue = (home: Home, queue: string): Promise<Lock> => lock(home, queueLockName(queue));

/**
 * The run if it still holds a slot: RUNNING or PAUSED now, or ended while its supervisor lives and
 * has not written its end (it may be claiming its next run: see handoff.ts). Null otherwise (a
 * run not yet launched holds none).
 */
function holdingRun(home: Home, name: string, id: string): JobRecord | null {
  let rec: JobRecord | null = null;
  try {
    rec = readRecord(home, name);
  } catch {
    return null;
  }
  if (!rec || rec.id !== id || rec.status === 'QUEUED') return null;
  if (isSameProcess(rec.pid, rec.starttime, rec.boot_id)) return rec;
  if (isTerminal(rec.status) || !isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id)) return null;
  return readEnd(home, name, id) ? null : rec;
}
const holdsSlot = (home: Home, name: string, id: string) => holdingRun(home, name, id) !== null;

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

/**
 * The queue's file with `running` pruned to the runs that still hold a slot, and every supervisor
 * that holds one (those of `running`, and those the hand-off moved on to a later run).
 */
export function queueNow(home: Home, queue: string): QueueNow {
  const file = readQueueFile(home, queue) ?? scanQueue(home, queue);
  const launched = new Map<string, Holder>();
  const running: Member[] = [];
  const holders = handOffHolders(home, queue, () => {
    for (const member of file.running) {
      const rec = holdingRun(home, member[0], member[1]);
      if (!rec) continue;
      running.push(member);
      const slot = member[2] ?? supervisorSlot(rec, queue);
      launched.set(`${rec.sup_pid} ${rec.sup_starttime}`, { slot, seq: rec.queue_seq ?? 0 });
    }
  });
  for (const [key, holder] of launched) if (!holders.has(key)) holders.set(key, holder);
  return { ...file, running, holders };
}

/**
 * The slot a run's live supervisor hands off in, from its argv (see supervisor.sh: SLOT follows
 * QUEUE), for a run listed without one (a queue file rebuilt from the records): a slot number
 * given twice would let two supervisors hand off under a limit of one. 0 when it hands off in none.
 */
function supervisorSlot(rec: JobRecord, queue: string): number {
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${rec.sup_pid}/cmdline`, 'latin1').split('\0');
  } catch {}
  const slot = Number(argv[13]);
  return argv[3] === 'bgmon-supervisor' && argv[12] === queue && Number.isSafeInteger(slot) ? slot : 0;
}

/** The lowest slot number no holder has: the slot of a run Node launches now. */
export function freeSlot(now: QueueNow): number {
  const used = new Set([...now.holders.values()].map((h) => h.slot));
  let slot = 1;
  while (used.has(slot)) slot++;
  return slot;
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
    const file = readQueueFile(home, queue) ?? scanQueue(home, queue);
    writeQueueFile(home, queue, { ...file, slots: slots ?? file.slots, next: file.next + count });
    writeSlotsFile(home, queue, slots ?? file.slots);
    return file.next;
  } finally {
    unlock(held);
  }
}
