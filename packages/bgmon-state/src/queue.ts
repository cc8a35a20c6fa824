import { closeSync, constants, openSync, statSync, writeSync } from 'node:fs';
import { ExecError, StateError } from './errors';
import { queuePath, type Home } from './paths';
import { nowIso, writeRecord, type JobRecord } from './record';
import { lock, LockBusyError, unlock } from './lock';
import { launch } from './launch';
import { readOwnFile, unlinkQuietly, writeFileAtomic } from './fsutil';
import { resolveExecutable } from './exec';
import { writeEndedRecord } from './on-end';
import {
  beginAdvancing, boundRuns, cancelReason, decide, endAdvancing, newLook, predecessorStates, queuedNames, readOrNull,
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

/**
 * Starts or cancels every queued job that can leave the queue; repeats until stable. A name
 * whose lock is stuck (LockBusyError) is skipped, not waited for: returns one note each.
 */
export async function advanceQueue(home: Home): Promise<string[]> {
  const skipped = new Map<string, string>();
  beginAdvancing();
  try {
    for (let changed = true; changed; ) {
      changed = false;
      newLook();
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
  } finally {
    endAdvancing();
  }
  return [...skipped.values()];
}

function readQueueEntry(home: Home, name: string): { id: string; env: NodeJS.ProcessEnv } | null {
  try {
    return JSON.parse(readOwnFile(queuePath(home, name)));
  } catch {
    return null;
  }
}

async function advanceOne(home: Home, name: string): Promise<boolean> {
  const rec = readOrNull(home, name);
  const entry = readQueueEntry(home, name);
  if (!rec || rec.status !== 'QUEUED' || !entry || entry.id !== rec.id) {
    removeQueueEntry(home, name);
    return false;
  }
  const states = predecessorStates(home, rec);
  const action = decide(states);
  if (action === 'queue') return false;
  let now: JobRecord;
  if (action === 'run') now = await launchOrFail(home, rec, entry.env);
  else {
    now = { ...rec, status: 'CANCELLED', ended_at: nowIso(), reason: cancelReason(home, boundRuns(rec), states) };
    now = writeEndedRecord(home, now);
  }
  rememberState(name, rec.id, now.status);
  removeQueueEntry(home, name);
  return true;
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
async function launchOrFail(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): Promise<JobRecord> {
  try {
    assertStartable(rec, env);
    return await launch(home, rec, env);
  } catch (err) {
    const reason = `could not start: ${(err as Error).message}`;
    appendToLog(rec.log, `bgmon: ${reason}\n`);
    const failed: JobRecord = {
      ...rec, status: 'FAILED', pid: null, started_at: null, ended_at: nowIso(),
      exit_code: err instanceof ExecError ? 127 : null, signal: null, reason,
    };
    return writeEndedRecord(home, failed);
  }
}

function appendToLog(log: string, text: string): void {
  try {
    const fd = openSync(log, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  } catch {
    // the record says why; a log we cannot write to must not hide that
  }
}
