import { closeSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ExecError, StateError } from './errors';
import { queuePath, type Home } from './paths';
import { isTerminal, nowIso, writeRecord, type JobRecord } from './record';
import { lock, lockHeldByLive, LockBusyError, unlock } from './lock';
import { isDue } from './delay';
import { freeSlot, queueLockName, queueNow, writeQueueFile, type QueueNow } from './queue-slots';
import { canHandOff, claimForNode, dropPrepared, preempt, pruneRuns } from './handoff';
import { launch } from './launch';
import { createEmpty, existsNoFollow, openLogAtLineStart, readOwnFile, unlinkQuietly, writeFileAtomic } from './fsutil';
import { resolveExecutable } from './exec';
import { writeEndedRecord } from './on-end';
import { foldHeld } from './fold';
import { currentState } from './classify';
import { readEnd } from './end';
import { isSameProcess } from './proc';
import {
  beginAdvancing,
  boundRuns,
  cancelReason,
  decide,
  endAdvancing,
  isReadyToLeaveQueue,
  newLook,
  predecessorStates,
  queuedNames,
  readOrNull,
  rememberState,
} from './queue-rules';

/*
 * Advancing the queue: whoever sees that queued jobs can leave it (a supervisor whose job ended,
 * bgmon-status, bgmon-wait) starts or cancels them, each under its name's lock. The rules that
 * decide are in queue-rules.ts.
 */

export function enqueue(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): void {
  writeFileAtomic(queuePath(home, rec.name), JSON.stringify({ id: rec.id, env }));
  writeRecord(home, rec);
}

export function removeQueueEntry(home: Home, name: string): void {
  unlinkQuietly(queuePath(home, name));
}

export const hasQueuedJobs = (home: Home): boolean => queuedNames(home).length > 0;

/** What one advance did: notes on names it could not lock, and the runs it launched (by name). */
export interface Advanced {
  notes: string[];
  launched: Map<string, JobRecord>;
}

/**
 * Starts or cancels every queued job that can leave the queue; repeats until stable. A name
 * whose lock is stuck (LockBusyError) is skipped, not waited for: returns one note each.
 */
export async function advanceQueue(home: Home, opts: AdvanceOptions = {}): Promise<string[]> {
  return (await advanceQueueFully(home, opts)).notes;
}

export interface AdvanceOptions {
  /**
   * false (a supervisor whose job ended): a queue whose lock a live process holds is not waited
   * for. The queue is marked (run/queues/Q.dirty) and its holder passes again once it has let
   * go, so a thousand ends do not line up behind one lock, each polling it.
   */
  waitForQueueLock?: boolean;
}

export async function advanceQueueFully(home: Home, opts: AdvanceOptions = {}): Promise<Advanced> {
  const done: Advanced = { notes: [], launched: new Map() };
  const skipped = new Map<string, string>();
  beginAdvancing();
  try {
    let launched = done.launched;
    for (let again = true; again; ) {
      newLook();
      const marked = { dirty: false };
      const changed = await advancePass(home, skipped, launched, opts.waitForQueueLock ?? true, marked);
      again = changed || marked.dirty;
      // a pass made for ends that others marked launches what those supervisors would have:
      // not reported as this call's (bgmon-start prints its jobs as its own passes left them)
      if (!changed && marked.dirty) launched = new Map();
    }
  } finally {
    endAdvancing();
  }
  done.notes = [...skipped.values()];
  return done;
}

/** One look at every queued job: those without a queue one by one, those with one queue by queue. */
async function advancePass(
  home: Home,
  skipped: Map<string, string>,
  launched: Map<string, JobRecord>,
  waitForQueueLock: boolean,
  marked: { dirty: boolean },
): Promise<boolean> {
  let changed = false;
  const byQueue = new Map<string, JobRecord[]>();
  for (const name of queuedNames(home)) {
    if (skipped.has(name)) continue;
    const rec = readOrNull(home, name);
    if (rec?.status === 'QUEUED' && rec.queue) {
      const list = byQueue.get(rec.queue);
      if (list) list.push(rec);
      else byQueue.set(rec.queue, [rec]);
      continue;
    }
    // a job that cannot leave yet is not locked: a thousand waiting jobs cost a thousand reads
    if (rec?.status === 'QUEUED' && !isReadyToLeaveQueue(home, rec)) continue;
    // nor is a run that left the queue and still runs: it has no end to fold, and its own end
    // passes again (a queue of 400 long jobs locked 400 names at every end in the home)
    if (rec && rec.status !== 'QUEUED' && isSameProcess(rec.pid, rec.starttime, rec.boot_id)) continue;
    changed = noteChange(launched, await underLock(home, name, skipped, () => advanceOne(home, name))) || changed;
  }
  for (const [queue, recs] of byQueue)
    changed = (await advanceSlots(home, queue, recs, skipped, launched, waitForQueueLock, marked)) || changed;
  return changed;
}

/**
 * Keeps a launched run; true when another pass may find more to do: a run that ended at once
 * (cancelled, could not start) can release its dependents now. A launched run is not waited
 * for: its own supervisor advances the queue when it ends, and bgmon-start returns at once.
 */
function noteChange(launched: Map<string, JobRecord>, now: JobRecord | null): boolean {
  if (now?.status === 'RUNNING') launched.set(now.name, now);
  return now !== null && now.status !== 'RUNNING';
}

/** fn under the lock named `lockName`; null (and a note) when that lock is stuck. */
async function underLock<T>(
  home: Home,
  lockName: string,
  skipped: Map<string, string>,
  fn: () => Promise<T | null>,
): Promise<T | null> {
  let held;
  try {
    held = await lock(home, lockName);
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err;
    skipped.set(lockName, `queued job ${lockName} not advanced: ${err.message}`);
    return null;
  }
  try {
    return await fn();
  } finally {
    unlock(held);
  }
}

/**
 * One queue, under its lock: its queued jobs in submission order; each that may run starts while
 * fewer than `slots` of the queue's runs are RUNNING or PAUSED (counted under the lock, so two
 * advancers never start more). A job still waiting for --after or its time does not hold up those
 * behind it; one whose predecessor failed is cancelled whatever the slots.
 */
async function advanceSlots(
  home: Home,
  queue: string,
  recs: JobRecord[],
  skipped: Map<string, string>,
  launched: Map<string, JobRecord>,
  waitForQueueLock: boolean,
  marked: { dirty: boolean },
): Promise<boolean> {
  const run = async (): Promise<boolean> => {
    const file = queueNow(home, queue);
    let changed = false;
    const joined = (rec: JobRecord): number => {
      const slot = freeSlot(file);
      file.running.push([rec.name, rec.id, slot]);
      file.holders.set(`launch ${rec.name}@${rec.id}`, { slot, seq: rec.queue_seq ?? 0 });
      writeQueueFile(home, queue, file);
      return slot;
    };
    recs.sort(bySubmission);
    pruneRuns(home, queue, frontierOf(file, recs));
    // the runs this pass launches first, claimed before the first launch (see claimForNode): the
    // leading plain runs, as many as there are free slots (each of them runs: it waits for nothing)
    const free = Math.max(0, file.slots - file.holders.size);
    const leading = recs.findIndex((rec) => !canHandOff(rec));
    claimForNode(home, recs.slice(0, Math.min(free, leading < 0 ? recs.length : leading)));
    for (const rec of recs) {
      const full = file.holders.size >= file.slots;
      // a full queue has nothing to decide for a job that waits for nothing else (a thousand
      // queued jobs must not cost a thousand state walks at every job's end)
      if (full && rec.after.length === 0) continue;
      const action = decide(predecessorStates(home, rec));
      if (action === 'queue' || (action === 'run' && (!isDue(rec.not_before) || full))) continue;
      const now = await underLock(home, rec.name, skipped, () => advanceOne(home, rec.name, joined));
      changed = noteChange(launched, now) || changed;
    }
    writeQueueFile(home, queue, file); // what queueNow pruned, for the next reader
    return changed;
  };
  const lockName = queueLockName(queue);
  const dirty = dirtyPath(home, queue);
  // marked before looking: a live holder that lets go after this mark sees it (below) and passes
  // again; a gone holder's lock is broken by lock() below
  if (!waitForQueueLock && createEmpty(dirty) && lockHeldByLive(home, lockName)) return false;
  unlinkQuietly(dirty);
  const changed = (await underLock(home, lockName, skipped, run)) ?? false;
  // marked while we held the lock: that ender did not wait, so this caller passes again
  if (existsNoFollow(dirty)) marked.dirty = true;
  return changed;
}

/** The smallest SEQ of a run of the queue that waits or holds a slot: run directories below it are done. */
/**
 * Removes the queue's run directories nothing needs any more (bgmon-rm: a queue with nothing
 * queued is never advanced, and a handed-off run's script holds its whole environment). The
 * queued runs are read before the lock: one that leaves meanwhile only lowers the frontier.
 */
export async function pruneQueue(home: Home, queue: string): Promise<void> {
  const queued = queuedNames(home)
    .map((name) => readOrNull(home, name))
    .filter((r): r is JobRecord => r?.status === 'QUEUED' && r.queue === queue);
  await underLock(home, queueLockName(queue), new Map(), async () => {
    pruneRuns(home, queue, frontierOf(queueNow(home, queue), queued));
    return null;
  });
}

function frontierOf(file: QueueNow, queued: JobRecord[]): number {
  const seqs = [...queued.map((r) => r.queue_seq ?? Infinity), ...[...file.holders.values()].map((h) => h.seq)];
  return Math.min(file.next, ...seqs);
}

const dirtyPath = (home: Home, queue: string) => join(home.run, 'queues', `${queue}.dirty`);

const bySubmission = (a: JobRecord, b: JobRecord) =>
  (a.queue_seq ?? Infinity) - (b.queue_seq ?? Infinity) || a.created_at.localeCompare(b.created_at);

function readQueueEntry(home: Home, name: string): { id: string; env: NodeJS.ProcessEnv } | null {
  try {
    return JSON.parse(readOwnFile(queuePath(home, name)));
  } catch {
    return null;
  }
}

/**
 * Starts or cancels one queued job if it can leave the queue (the caller holds its lock, and its
 * queue's lock when it has one: `joining` then records the run in the queue before it launches).
 * Returns the new record, or null when nothing changed.
 */
async function advanceOne(home: Home, name: string, joining?: (rec: JobRecord) => number): Promise<JobRecord | null> {
  const rec = readOrNull(home, name);
  const entry = readQueueEntry(home, name);
  if (rec?.status !== 'QUEUED' || !entry || entry.id !== rec.id) {
    // A run that left the queue keeps its entry until its end is folded into its record file.
    // A supervisor that hands off folds only its last run's end, so the runs before it are folded
    // here, by the pass its queue's last end makes, and no reader needs to. And a reader that
    // found this name's lock busy leaves nothing unfolded: its holder folds.
    // One that ended with no end recorded (DEAD, STALE: its supervisor killed) is never folded:
    // its entry goes, or every later pass in the home would lock and read it again, for ever.
    if (rec && entry?.id === rec.id && !foldHeld(home, name, rec.id) && !endedUnrecorded(home, rec)) return null;
    removeQueueEntry(home, name);
    return null;
  }
  const states = predecessorStates(home, rec);
  const action = decide(states);
  if (action === 'queue' || (action === 'run' && !isDue(rec.not_before))) return null;
  // the queue's hand-off must never start it too: it started it first, or never will
  if (preempt(home, rec) === 'started') return null;
  dropPrepared(home, rec);
  let now: JobRecord;
  if (action === 'run') {
    const slot = joining?.(rec) ?? 0;
    now = await launchOrFail(home, rec, entry.env, slot);
  } else {
    now = { ...rec, status: 'CANCELLED', ended_at: nowIso(), reason: cancelReason(home, boundRuns(rec), states) };
    now = writeEndedRecord(home, now);
  }
  rememberState(name, rec.id, now.status);
  if (isTerminal(now.status)) removeQueueEntry(home, name);
  return now;
}

/** A run whose supervisor is gone without recording its end (nor anyone since): nothing will ever fold it. */
function endedUnrecorded(home: Home, rec: JobRecord): boolean {
  if (isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id)) return false;
  return readEnd(home, rec.name, rec.id) === null && isTerminal(currentState(home, rec).status);
}

/** What launch cannot report well itself: a working directory or command gone since queueing. */
function assertStartable(rec: JobRecord, env: NodeJS.ProcessEnv): void {
  let isDir = false;
  try {
    isDir = statSync(rec.cwd).isDirectory();
  } catch {}
  if (!isDir) throw new StateError(`working directory ${rec.cwd} is gone or not a directory`);
  resolveExecutable(rec.cmd[0], env.PATH, rec.cwd);
}

/**
 * Starts a queued job. One that cannot start ends FAILED with the reason in its record and
 * its log (exit code 127 when the command cannot be found or executed, as bgmon-start
 * reports it), so the rest of the queue and every listing go on.
 */
async function launchOrFail(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv, slot: number): Promise<JobRecord> {
  try {
    assertStartable(rec, env);
    return await launch(home, rec, env, slot);
  } catch (err) {
    const reason = `could not start: ${(err as Error).message}`;
    appendToLog(rec.log, `bgmon: ${reason}\n`);
    const failed: JobRecord = {
      ...rec,
      status: 'FAILED',
      pid: null,
      started_at: null,
      ended_at: nowIso(),
      exit_code: err instanceof ExecError ? 127 : null,
      signal: null,
      reason,
    };
    return writeEndedRecord(home, failed);
  }
}

function appendToLog(log: string, text: string): void {
  try {
    const fd = openLogAtLineStart(log);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  } catch {
    // the record says why; a log we cannot write to must not hide that
  }
}
