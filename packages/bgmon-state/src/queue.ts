import { readdirSync } from 'node:fs';
import { UsageError } from './errors';
import { queuePath, type Home } from './paths';
import { isTerminal, nowIso, readRecord, writeRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { lock, LockBusyError, unlock } from './lock';
import { launch } from './launch';
import { readOwnFile, unlinkQuietly, writeFileAtomic } from './fsutil';

/*
 * --after without a daemon: a QUEUED job is a record plus run/<name>.queued (its id and
 * environment). No process waits for it. Whenever a supervisor records an end it runs
 * `--advance-queue` if any queue file exists, which starts or cancels every queued job whose
 * predecessors have all ended. bgmon-status and bgmon-wait advance it too, so a chain whose
 * supervisor was killed still moves on the next time anybody looks.
 */

export type AfterPlan = 'run' | 'queue' | 'cancel';

function readOrNull(home: Home, name: string): JobRecord | null {
  try {
    return readRecord(home, name);
  } catch {
    return null;
  }
}

/** The current state of each predecessor; a removed one counts as CANCELLED (it will never succeed). */
function predecessorStates(home: Home, after: string[]): string[] {
  return after.map((dep) => {
    const d = readOrNull(home, dep);
    return d ? currentState(home, d).status : 'CANCELLED';
  });
}

/** Validates --after names (exist, no cycle) and decides what the new job does now. */
export function planAfter(home: Home, name: string, after: string[]): AfterPlan {
  if (after.length === 0) return 'run';
  const seen = new Set<string>();
  const visit = (dep: string, path: string[]) => {
    if (dep === name) throw new UsageError(`--after ${[...path, dep].join(' -> ')}: that is a cycle`);
    if (seen.has(dep)) return;
    seen.add(dep);
    const rec = readOrNull(home, dep);
    if (!rec) throw new UsageError(`--after ${dep}: no such job`);
    if (rec.status === 'QUEUED') for (const next of rec.after) visit(next, [...path, dep]);
  };
  for (const dep of after) visit(dep, [name]);
  const states = predecessorStates(home, after);
  if (states.some((s) => !isTerminal(s))) return 'queue';
  return states.every((s) => s === 'SUCCEEDED') ? 'run' : 'cancel';
}

/** What a QUEUED record really is now: CANCELLED as soon as a predecessor did not succeed. */
let depth = 0;
export function queuedState(home: Home, rec: JobRecord): JobRecord {
  if (depth > 64) return rec;
  depth++;
  try {
    const failed = predecessorStates(home, rec.after).some((s) => isTerminal(s) && s !== 'SUCCEEDED');
    return failed ? { ...rec, status: 'CANCELLED' } : rec;
  } finally {
    depth--;
  }
}

/**
 * True when a record still QUEUED on disk has predecessors that have all ended, so someone
 * should advance the queue. Give it the record as read, not its current state (which may
 * already say CANCELLED while the file still says QUEUED).
 */
export function isReadyToLeaveQueue(home: Home, rec: JobRecord): boolean {
  return rec.status === 'QUEUED' && predecessorStates(home, rec.after).every(isTerminal);
}

export function enqueue(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): void {
  writeFileAtomic(queuePath(home, rec.name), JSON.stringify({ id: rec.id, env }));
  writeRecord(home, rec);
}

export function removeQueueEntry(home: Home, name: string): void {
  unlinkQuietly(queuePath(home, name));
}

function queuedNames(home: Home): string[] {
  try {
    return readdirSync(home.run).filter((f) => f.endsWith('.queued')).map((f) => f.slice(0, -7));
  } catch {
    return [];
  }
}

/**
 * Starts or cancels every queued job whose predecessors have all ended; repeats until stable.
 * A name whose lock is stuck (LockBusyError) is skipped, not waited for: returns one note each.
 */
export async function advanceQueue(home: Home): Promise<string[]> {
  const skipped = new Map<string, string>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const name of queuedNames(home)) {
      if (skipped.has(name)) continue;
      let held;
      try {
        held = await lock(home, name);
      } catch (err) {
        if (!(err instanceof LockBusyError)) throw err;
        skipped.set(name, `queued job ${name} not advanced: ${err.message}`);
        continue;
      }
      try {
        changed = (await advanceOne(home, name)) || changed;
      } finally {
        unlock(held);
      }
    }
  }
  return [...skipped.values()];
}

async function advanceOne(home: Home, name: string): Promise<boolean> {
  const rec = readOrNull(home, name);
  let entry: { id: string; env: NodeJS.ProcessEnv } | null = null;
  try {
    entry = JSON.parse(readOwnFile(queuePath(home, name)));
  } catch {}
  if (!rec || rec.status !== 'QUEUED' || !entry || entry.id !== rec.id) {
    removeQueueEntry(home, name);
    return false;
  }
  const states = predecessorStates(home, rec.after);
  if (states.some((s) => !isTerminal(s))) return false;
  if (states.every((s) => s === 'SUCCEEDED')) await launch(home, rec, entry.env);
  else writeRecord(home, { ...rec, status: 'CANCELLED', ended_at: nowIso() });
  removeQueueEntry(home, name);
  return true;
}
