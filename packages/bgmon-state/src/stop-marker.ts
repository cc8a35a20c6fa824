import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { createEmpty, isFile, unlinkQuietly, writeFileAtomic } from './fsutil';
import { join } from 'node:path';
import { stopMarkerPath, type Home } from './paths';
import { bootId, isSameProcess, readStat } from './proc';
import type { JobRecord } from './record';

/*
 * How "bgmon-stop ended this run" is remembered until the run's end is recorded. In run/:
 *   NAME@ID.stop-by.PID.START.BOOT  empty: a stopper (pid, starttime, boot id without dashes) is
 *                                   at work on run ID. It counts only while that stopper lives, so
 *                                   a stop killed with SIGKILL cannot label a later natural end.
 *   NAME@ID.stopped                 empty: a stopper saw the run end under its signals; counts
 *                                   until the end is recorded.
 *   NAME.stop                       "ID\nPID START BOOT\n", for the sh supervisor, which compares
 *                                   its first line with the run id; written only when there is room.
 * The two empty files hold everything in their names: creating or renaming them needs no free
 * blocks, so a full disk cannot stop a stop. '@' never occurs in a job name, so "NAME@" is never
 * the start of another job's file.
 */

export interface StopClaim {
  home: Home;
  name: string;
  id: string;
  /** the claim file, null when even an empty file could not be created */
  file: string | null;
  /** the NAME.stop line 2 we wrote, null when it could not be written */
  legacy: string | null;
}

// Real run ids are base36 time, '-', hex. Anything else (a hand-written record) never names a file.
const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const isUsableRunId = (id: unknown): id is string => typeof id === 'string' && RUN_ID.test(id);

const compactBoot = () => bootId().replace(/-/g, '');
const stoppedPath = (home: Home, name: string, id: string) => join(home.run, `${name}@${id}.stopped`);
const claimPrefix = (name: string, id: string) => `${name}@${id}.stop-by.`;
const CLAIM_TAIL = /^(\d+)\.(\d+)\.([0-9a-f]{32})$/;

/** Marks run rec.id as being stopped by this process; best effort, never throws. */
export function claimStop(home: Home, rec: JobRecord): StopClaim {
  sweepOldMarkers(home, rec);
  const me = readStat(process.pid)!;
  const file = join(home.run, `${claimPrefix(rec.name, rec.id)}${process.pid}.${me.starttime}.${compactBoot()}`);
  const claim: StopClaim = { home, name: rec.name, id: rec.id, file: createEmpty(file) ? file : null, legacy: null };
  const line2 = `${process.pid} ${me.starttime} ${compactBoot()}`;
  try {
    writeFileAtomic(stopMarkerPath(home, rec.name), `${rec.id}\n${line2}\n`);
    claim.legacy = line2;
  } catch {
    // ENOSPC: the empty claim file above is what counts
  }
  return claim;
}

/** The run ended under our signals: the stop counts even after we exit. */
export function confirmStop(claim: StopClaim): void {
  const done = stoppedPath(claim.home, claim.name, claim.id);
  if (claim.file) {
    try {
      renameSync(claim.file, done);
      claim.file = null;
      return;
    } catch {}
  }
  createEmpty(done);
}

/** The run has not ended: take back every trace of this stop, so it changes no later outcome. */
export function withdrawStop(claim: StopClaim): void {
  if (claim.file) unlinkQuietly(claim.file!);
  claim.file = null;
  const legacy = stopMarkerPath(claim.home, claim.name);
  if (claim.legacy !== null && readText(legacy) === `${claim.id}\n${claim.legacy}\n`) unlinkQuietly(legacy);
}

/** The run's end is recorded: its markers have done their work. */
export function clearStop(home: Home, rec: JobRecord): void {
  if (!isUsableRunId(rec.id)) return;
  unlinkQuietly(stoppedPath(home, rec.name, rec.id));
  const legacy = stopMarkerPath(home, rec.name);
  if (readText(legacy)?.split('\n')[0] === rec.id) unlinkQuietly(legacy);
}

/** Every stop marker of a name, whatever the run (for rm and for a new run of the name). */
export function removeStopMarkers(home: Home, name: string): void {
  for (const entry of listRun(home)) {
    if (entry === `${name}.stop` || isMarkerOf(name, entry)) unlinkQuietly(join(home.run, entry));
  }
}

/** True when bgmon-stop ended this run: a confirmed stop, or a stopper still alive and at work. */
export function wasStopped(home: Home, rec: JobRecord): boolean {
  if (!isUsableRunId(rec.id)) return false;
  if (isFile(stoppedPath(home, rec.name, rec.id))) return true;
  return liveClaims(home, rec).length > 0;
}

function liveClaims(home: Home, rec: JobRecord): string[] {
  const prefix = claimPrefix(rec.name, rec.id);
  const boot = compactBoot();
  return listRun(home).filter((entry) => {
    const m = entry.startsWith(prefix) ? CLAIM_TAIL.exec(entry.slice(prefix.length)) : null;
    return m !== null && m[3] === boot && isSameProcess(Number(m[1]), Number(m[2]), bootId());
  });
}

/** NAME@ID.stopped or NAME@ID.stop-by.PID.START.BOOT, for any run id. */
function isMarkerOf(name: string, entry: string): boolean {
  if (!entry.startsWith(`${name}@`)) return false;
  const rest = entry.slice(name.length + 1);
  const dot = rest.indexOf('.');
  const tail = rest.slice(dot + 1);
  return dot > 0 && (tail === 'stopped' || (tail.startsWith('stop-by.') && CLAIM_TAIL.test(tail.slice(8))));
}

/** Claims and confirmations of this name's other runs, and claims of dead stoppers, count for nothing. */
function sweepOldMarkers(home: Home, rec: JobRecord): void {
  const live = new Set(liveClaims(home, rec));
  const current = `${rec.name}@${rec.id}.stopped`;
  for (const entry of listRun(home)) {
    if (entry !== current && !live.has(entry) && isMarkerOf(rec.name, entry)) unlinkQuietly(join(home.run, entry));
  }
}

function listRun(home: Home): string[] {
  try {
    return readdirSync(home.run);
  } catch {
    return [];
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}
