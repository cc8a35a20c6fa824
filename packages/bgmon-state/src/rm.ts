import { readdirSync } from 'node:fs';
import { StateError } from './errors';
import { join } from 'node:path';
import { logPath, previousLogPath, queuePath, recordPath, sparePath, type Home } from './paths';
import { CorruptRecordError, isTerminal, readRecord, type ActionResult, type JobRecord } from './record';
import { currentState } from './classify';
import { lock, unlock } from './lock';
import { stopJobs, type StopOptions } from './stop';
import { existsNoFollow, unlinkQuietly } from './fsutil';
import { removeStopMarkers } from './stop-marker';
import { advanceQueue, pruneQueue } from './queue';
import { boundRuns, queuedNames, readOrNull, waitingDependents } from './queue-rules';
import { envPath, historyFilesByName, historyPath } from './history';
import { loadHistory } from './select';
import { forgetRecordCache } from './record-cache';

export interface RmOptions {
  /** only terminal jobs, skipping live ones instead of refusing them */
  finished: boolean;
  /** with finished: only jobs that ended at least this long ago */
  olderThanMs: number | null;
  /** stop QUEUED and RUNNING jobs first instead of refusing them */
  stop: StopOptions | null;
}

function endedLongAgo(rec: JobRecord, olderThanMs: number | null, now: number): boolean {
  if (olderThanMs === null) return true;
  const at = rec.ended_at ?? rec.started_at ?? rec.created_at;
  return now - Date.parse(at) >= olderThanMs;
}

function listOrNone(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Files beyond the fixed ones, by job name: kept logs (logs/<name>@<id>.log) and temp files
 * of writers killed mid-write (jobs/.<name>.<pid>.<n>.tmp), runs' end and spare files. Listed once per call, not once
 * per job, so removing thousands of jobs does not read the folders thousands of times.
 */
function extraFilesByName(home: Home): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  const add = (name: string, path: string) => byName.set(name, [...(byName.get(name) ?? []), path]);
  for (const file of listOrNone(home.logs)) {
    const at = file.indexOf('@');
    if (at > 0 && file.endsWith('.log')) add(file.slice(0, at), join(home.logs, file));
  }
  for (const file of listOrNone(home.jobs)) {
    // writers' temp files, and runs' end and spare files (see end.ts)
    const own = /^\.(.+)\.\d+\.\d+\.tmp$/.exec(file) ?? /^\.([^@]+)@[^@]+\.(?:end|spare)$/.exec(file);
    if (own) add(own[1], join(home.jobs, file));
  }
  for (const [name, files] of historyFilesByName(home)) files.forEach((file) => add(name, file));
  for (const file of listOrNone(home.run)) {
    // runs' kept --env values and hook environments, --after markers, temp files of killed writers
    const own = /^\.?([^.@][^@]*)@[^@]+\.(?:(?:on-end-)?env(?:\..*)?|waited)$/.exec(file);
    if (own) add(own[1], join(home.run, file));
  }
  return byName;
}

/** The kept past runs of the names, oldest first, by name. */
function pastRunsByName(home: Home, names: string[]): Map<string, JobRecord[]> {
  const byName = new Map<string, JobRecord[]>();
  if (names.length === 0) return byName;
  for (const rec of loadHistory(home, names)) byName.set(rec.name, [...(byName.get(rec.name) ?? []), rec]);
  return byName;
}

/** Removes one terminal job: its record first (so readers see it gone), then its files. */
async function removeJob(home: Home, name: string, id: string, extra: string[]): Promise<boolean> {
  const held = await lock(home, name);
  try {
    const rec = readRecord(home, name);
    // a new run of the name started meanwhile: not ours to remove
    if (!rec || rec.id !== id || !isTerminal(currentState(home, rec).status)) return false;
    removeFiles(home, name, extra);
    return true;
  } finally {
    unlock(held);
  }
}

function removeFiles(home: Home, name: string, extra: string[]): void {
  unlinkQuietly(recordPath(home, name));
  unlinkQuietly(logPath(home, name));
  unlinkQuietly(sparePath(home, name)); // the single spare of versions before end files
  removeStopMarkers(home, name);
  unlinkQuietly(queuePath(home, name));
  extra.forEach(unlinkQuietly);
}

/**
 * A named job whose record cannot be read: nothing in it can be trusted (not even a pid to
 * stop), so it is removed with its logs, as start's hint promises. Checked again under the lock.
 */
async function removeCorrupt(home: Home, name: string, extra: string[]): Promise<string> {
  const held = await lock(home, name);
  try {
    try {
      readRecord(home, name);
      return `job ${name} changed while being removed; left as it is`;
    } catch (err) {
      if (!(err instanceof CorruptRecordError)) throw err;
    }
    removeFiles(home, name, extra);
    const file = recordPath(home, name);
    if (existsNoFollow(file)) throw new StateError(`cannot remove ${file} (a corrupt record): remove it by hand`);
    return `removed ${file} (a corrupt record) and its logs`;
  } finally {
    unlock(held);
  }
}

/** The record, or the name in `corrupt` (named) or a note (--finished skips it). */
function readOrSetAside(
  home: Home,
  name: string,
  opts: RmOptions,
  corrupt: string[],
  notes: string[],
): JobRecord | null {
  try {
    return readRecord(home, name);
  } catch (err) {
    if (!(err instanceof CorruptRecordError)) throw err;
    if (opts.finished) notes.push(`${err.message}; skipped (remove it with bgmon-rm ${name})`);
    else corrupt.push(name);
    return null;
  }
}

/** Runs a QUEUED job waits for (bound by id), as name@id: their kept records must stay readable. */
function boundByQueued(home: Home): Set<string> {
  const bound = new Set<string>();
  for (const name of queuedNames(home)) {
    const rec = readOrNull(home, name);
    if (rec?.status === 'QUEUED') boundRuns(rec).forEach((dep) => dep.id && bound.add(`${dep.name}@${dep.id}`));
  }
  return bound;
}

/**
 * Removes past runs (replaced by a rerun): each kept record, its kept log and its --env values.
 * A run a QUEUED job still waits for is kept (a refusal when named, a note when pruned).
 */
function removePastRuns(home: Home, runs: JobRecord[], named: boolean, result: ActionResult): void {
  if (runs.length === 0) return;
  const bound = boundByQueued(home);
  for (const rec of runs) {
    if (bound.has(`${rec.name}@${rec.id}`)) {
      (named ? result.refusals : result.notes).push(`run ${rec.name}@${rec.id} is kept: a queued job waits for it`);
      continue;
    }
    // the record first, so readers never find a kept run without its log
    unlinkQuietly(historyPath(home, rec.name, rec.id));
    unlinkQuietly(previousLogPath(home, rec.name, rec.id));
    unlinkQuietly(envPath(home, rec.name, rec.id));
    result.records.push(rec);
  }
}

/**
 * --finished also prunes the past runs of the names (even of a name whose current run is live)
 * that ended at least --older-than ago.
 */
function prunePastRuns(home: Home, names: string[], opts: RmOptions, result: ActionResult): void {
  const now = Date.now();
  const old = loadHistory(home, names).filter((rec) => endedLongAgo(rec, opts.olderThanMs, now));
  removePastRuns(home, old, false, result);
}

/** Removes jobs by name (with their past runs), and past runs named as NAME@ID (`past`). */
export async function removeJobs(
  home: Home,
  names: string[],
  opts: RmOptions,
  past: JobRecord[] = [],
): Promise<ActionResult> {
  const result = await removeCurrentRuns(home, names, opts);
  // --finished --older-than holds for a past run named as NAME@ID as for a current one
  const now = Date.now();
  removePastRuns(home, opts.finished ? past.filter((r) => endedLongAgo(r, opts.olderThanMs, now)) : past, true, result);
  if (opts.finished) prunePastRuns(home, names, opts, result);
  // the records cache may hold a copy of what was removed
  forgetRecordCache(home);
  // the run directories of removed handed-off runs (their scripts hold their environment)
  for (const queue of new Set(result.records.map((r) => r.queue).filter((q) => q != null)))
    await pruneQueue(home, queue);
  return result;
}

async function removeCurrentRuns(home: Home, names: string[], opts: RmOptions): Promise<ActionResult> {
  const refusals: string[] = [];
  const notes: string[] = [];
  const corrupt: string[] = [];
  const now = Date.now();
  const targets: JobRecord[] = [];
  const toStop: string[] = [];
  for (const name of names) {
    const rec = readOrSetAside(home, name, opts, corrupt, notes);
    if (!rec) continue;
    const cur = currentState(home, rec);
    if (isTerminal(cur.status)) {
      if (!opts.finished || endedLongAgo(cur, opts.olderThanMs, now)) targets.push(cur);
    } else if (opts.finished) continue;
    else if (opts.stop) toStop.push(name);
    else refusals.push(`job ${name} is ${cur.status}; stop it first or use --stop`);
  }
  if (toStop.length > 0) {
    const stopped = await stopJobs(home, toStop, opts.stop!);
    refusals.push(...stopped.refusals);
    for (const rec of stopped.records) {
      if (isTerminal(rec.status)) targets.push(rec);
      else refusals.push(`job ${rec.name} is still ${rec.status} after bgmon-stop`);
    }
  }
  const removed: JobRecord[] = [];
  const extra = targets.length + corrupt.length > 0 ? extraFilesByName(home) : new Map<string, string[]>();
  // a name goes with its past runs: they are printed with it, as --finished prints those it prunes
  const pastOf = pastRunsByName(
    home,
    targets.map((r) => r.name),
  );
  // a queued job must still find the outcome of the run it waits for: keep that job
  const waiting = targets.length > 0 ? waitingDependents(home) : new Map<string, string[]>();
  for (const rec of targets) {
    const by = waiting.get(rec.name);
    if (by) (opts.finished ? notes : refusals).push(`job ${rec.name} is kept: ${by.join(', ')} queued after it`);
    else if (await removeJob(home, rec.name, rec.id, extra.get(rec.name) ?? [])) {
      removed.push(...(pastOf.get(rec.name) ?? []), rec);
    }
  }
  for (const name of corrupt) notes.push(await removeCorrupt(home, name, extra.get(name) ?? []));
  // a job queued after a removed one (queued meanwhile) is cancelled now, on disk
  if (removed.length > 0) await advanceQueue(home);
  return { records: removed, refusals, notes };
}
