import { currentState } from './classify';
import { endPath, readEnd, writeThroughSpare } from './end';
import { unlinkQuietly } from './fsutil';
import { waitedPath } from './handoff';
import { clearStop } from './stop-marker';
import { lock, tryLock, unlock, type Lock } from './lock';
import { recordPath, type Home } from './paths';
import { isTerminal, readRecord, writeRecord, type JobRecord } from './record';
import { hookDue, markHook, startHook } from './on-end';
import { isSameProcess } from './proc';

/*
 * Folding: writing an end from the run's end file into jobs/<name>.json, so the record file says
 * what happened and the next read costs one file. The end file is the truth until then; folding
 * is an optimisation anyone may do under the name's lock, and losing it (a full disk, a killed
 * process) loses nothing. The fold that writes the end starts the run's --on-end hook.
 */

function foldLocked(home: Home, held: Lock, name: string, id: string): void {
  try {
    foldHeld(home, name, id);
  } finally {
    unlock(held);
  }
}

/**
 * Folds the run's end, or its progress, for a caller that holds the name's lock. True when the
 * record file no longer says the run is under way: its end is written there, or it is another run's.
 */
export function foldHeld(home: Home, name: string, id: string): boolean {
  try {
    const disk = readRecord(home, name);
    if (!disk || disk.id !== id) return true;
    if (disk.status !== 'RUNNING') return isTerminal(disk.status);
    if (!readEnd(home, name, id)) {
      foldProgress(home, disk);
      return false;
    }
    const ended = markHook(currentState(home, disk));
    if (!isTerminal(ended.status)) return false;
    if (!writeThroughSpare(home, ended, recordPath(home, name))) writeRecord(home, ended);
    unlinkQuietly(endPath(home, name, id));
    unlinkQuietly(waitedPath(home, name, id));
    clearStop(home, ended);
    if (ended.on_end_ran_at !== disk.on_end_ran_at) startHook(home, ended);
    return true;
  } catch {
    return false; // a corrupt record or a full disk: the end file still holds the truth
  }
}

/**
 * A run with no recorded end: a retried run's current attempt (pid, attempts so far) is written
 * into the record; a run that is DEAD for good (its supervisor gone) gets its hook started, once.
 */
function foldProgress(home: Home, disk: JobRecord): void {
  const cur = currentState(home, disk);
  if (cur.status === 'DEAD' && hookDue(cur) && !isSameProcess(disk.sup_pid, disk.sup_starttime, disk.boot_id)) {
    const marked = markHook(cur);
    writeRecord(home, { ...disk, on_end_ran_at: marked.on_end_ran_at });
    startHook(home, marked);
    return;
  }
  if (disk.retry && !isTerminal(cur.status) && movedOn(disk, cur)) {
    writeRecord(home, { ...cur, status: 'RUNNING' });
  }
}

const movedOn = (disk: JobRecord, cur: JobRecord) =>
  cur.pid !== disk.pid ||
  cur.attempt !== disk.attempt ||
  (cur.next_attempt_at ?? null) !== (disk.next_attempt_at ?? null);

function worthFolding(home: Home, cur: JobRecord): boolean {
  if (isTerminal(cur.status))
    return readEnd(home, cur.name, cur.id) !== null || (cur.status === 'DEAD' && hookDue(cur));
  if (!cur.retry) return false;
  try {
    const disk = readRecord(home, cur.name);
    return disk !== null && disk.id === cur.id && movedOn(disk, cur);
  } catch {
    return false;
  }
}

/** Folds an end (or a retried run's progress) a reader has just worked out, unless the name is busy. */
export function foldIfFree(home: Home, cur: JobRecord): void {
  if (!worthFolding(home, cur)) return;
  const held = tryLock(home, cur.name);
  if (held) foldLocked(home, held, cur.name, cur.id);
}

/** Run by the supervisor (bgmon-* --job-ended NAME ID) once it has written the end file. */
export async function foldEnd(home: Home, name: string, id: string): Promise<void> {
  let held: Lock;
  try {
    held = await lock(home, name);
  } catch {
    return; // the end file stays the truth
  }
  foldLocked(home, held, name, id);
}
