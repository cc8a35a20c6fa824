import { closeSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { openLogAtLineStart, readOwnFile, unlinkQuietly, writeFileAtomic } from './fsutil';
import { isTerminal, nowIso, writeRecord, type JobRecord } from './record';
import type { Home } from './paths';

/*
 * --on-end CMD: `sh -c CMD` once a run has ended, whatever the outcome. Started by whoever
 * records the end under the name's lock (the fold of a supervisor's end, the queue cancelling a
 * job, bgmon-stop of a queued job), after the record with `on_end_ran_at` is on disk, so it runs
 * at most once per run. It runs detached, its output appended to the job's log after a marker
 * line; what it does or how it ends never changes the run's record.
 *
 * Its environment is the job's (the caller's at bgmon-start, with --env), whoever starts it: kept
 * 0600 in run/<name>@<id>.on-end-env from the start (for runs with a hook only) until the hook
 * has started, then removed (it may hold secrets).
 */

export const ON_END_MARKER = '--- bgmon: on-end ---\n';

/** The run has ended and its hook has not been started yet. */
export const hookDue = (rec: JobRecord): boolean =>
  typeof rec.on_end === 'string' && !rec.on_end_ran_at && isTerminal(rec.status);

/** The record to write for an ended run: with `on_end_ran_at` when its hook is about to start. */
export const markHook = (rec: JobRecord): JobRecord => (hookDue(rec) ? { ...rec, on_end_ran_at: nowIso() } : rec);

/** Writes an ended run's record, then starts its hook if this write is the one that marked it. */
export function writeEndedRecord(home: Home, rec: JobRecord): JobRecord {
  const marked = markHook(rec);
  writeRecord(home, marked);
  if (marked !== rec) startHook(home, marked);
  return marked;
}

const hookEnvPath = (home: Home, name: string, id: string) => join(home.run, `${name}@${id}.on-end-env`);

/** Keeps the job's environment for its hook (runs with --on-end only). */
export function keepHookEnv(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): void {
  if (typeof rec.on_end === 'string') writeFileAtomic(hookEnvPath(home, rec.name, rec.id), JSON.stringify(env));
}

/** The run's kept hook environment is no longer needed (the hook has started, or the run is removed). */
export const dropHookEnv = (home: Home, rec: Pick<JobRecord, 'name' | 'id'>): void =>
  unlinkQuietly(hookEnvPath(home, rec.name, rec.id));

/** The job's kept environment; a run of an older version has none: then this process's. */
function jobEnvOf(home: Home, rec: JobRecord): NodeJS.ProcessEnv {
  try {
    const env = JSON.parse(readOwnFile(hookEnvPath(home, rec.name, rec.id)));
    if (typeof env === 'object' && env !== null && Object.values(env).every((v) => typeof v === 'string')) return env;
  } catch {}
  return process.env;
}

function hookEnv(home: Home, rec: JobRecord): NodeJS.ProcessEnv {
  return {
    ...jobEnvOf(home, rec),
    BGMON_JOB: rec.name,
    BGMON_JOB_ID: rec.id,
    BGMON_STATUS: rec.status,
    BGMON_EXIT_CODE: rec.exit_code === null ? '' : String(rec.exit_code),
    BGMON_SIGNAL: rec.signal ?? '',
    BGMON_LOG: rec.log,
  };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Starts the hook of an ended run, detached; best effort, never throws. */
export function startHook(home: Home, rec: JobRecord): void {
  if (typeof rec.on_end !== 'string') return;
  let fd: number | null = null;
  try {
    try {
      fd = openLogAtLineStart(rec.log);
      writeSync(fd, ON_END_MARKER);
    } catch {
      // a log we cannot write (gone from a full disk, a link planted at its path): the hook
      // still runs, its output discarded, rather than silently not at all
    }
    const { spawn } = require('node:child_process') as typeof import('node:child_process');
    const child = spawn('/bin/sh', ['-c', rec.on_end], {
      cwd: isDirectory(rec.cwd) ? rec.cwd : '/',
      env: hookEnv(home, rec),
      detached: true,
      stdio: fd === null ? 'ignore' : ['ignore', fd, fd],
    });
    child.on('error', () => {});
    child.unref();
  } catch {
    // a failed fork: the run's outcome stands as recorded
  } finally {
    if (fd !== null) closeSync(fd);
    dropHookEnv(home, rec); // marked as run: it will not be started again
  }
}
