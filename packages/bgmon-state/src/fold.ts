import { currentState } from './classify';
import { endPath, readEnd, writeThroughSpare } from './end';
import { unlinkQuietly } from './fsutil';
import { clearStop } from './stop-marker';
import { lock, tryLock, unlock, type Lock } from './lock';
import { recordPath, type Home } from './paths';
import { isTerminal, readRecord, writeRecord, type JobRecord } from './record';

/*
 * Folding: writing an end from the run's end file into jobs/<name>.json, so the record file says
 * what happened and the next read costs one file. The end file is the truth until then; folding
 * is an optimisation anyone may do under the name's lock, and losing it (a full disk, a killed
 * process) loses nothing.
 */

function foldLocked(home: Home, held: Lock, name: string, id: string): void {
  try {
    const disk = readRecord(home, name);
    if (!disk || disk.id !== id || disk.status !== 'RUNNING' || !readEnd(home, name, id)) return;
    const ended = currentState(home, disk);
    if (!isTerminal(ended.status)) return;
    if (!writeThroughSpare(home, ended, recordPath(home, name))) writeRecord(home, ended);
    unlinkQuietly(endPath(home, name, id));
    clearStop(home, ended);
  } catch {
    // a corrupt record or a full disk: the end file still holds the truth
  } finally {
    unlock(held);
  }
}

/** Folds an end a reader has just worked out, unless the name is busy (the next reader will). */
export function foldIfFree(home: Home, ended: JobRecord): void {
  if (!isTerminal(ended.status) || !readEnd(home, ended.name, ended.id)) return;
  const held = tryLock(home, ended.name);
  if (held) foldLocked(home, held, ended.name, ended.id);
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
