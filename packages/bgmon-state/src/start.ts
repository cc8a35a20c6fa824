import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { StateError, UsageError } from './errors';
import { assertName, deriveName } from './names';
import { ensureHome, logPath, previousLogPath, recordPath, type Home } from './paths';
import { isTerminal, newRunId, nowIso, readRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { lock, unlock } from './lock';
import { launch } from './launch';
import { enqueue, removeQueueEntry } from './queue';
import { planAfter } from './queue-rules';
import { renameOwnFile, unlinkQuietly } from './fsutil';
import { endPath, sparePath } from './end';
import { removeStopMarkers } from './stop-marker';
import { archiveRun } from './history';
import { resolveExecutable } from './exec';
import { retrySettings, type RetryFlags } from './retry';
import { writeEndedRecord } from './on-end';

export { resolveExecutable };

export interface StartOptions {
  name?: string;
  cwd?: string;
  /** K=V strings from --env */
  env: string[];
  after: string[];
  cmd: string[];
  /** --retry and its companions, as given */
  retry?: RetryFlags;
  /** --on-end CMD */
  onEnd?: string;
}

/** The record fields of --retry and --on-end; a usage error for bad values. */
function retryAndHookFields(opts: StartOptions): Partial<JobRecord> {
  const retry = retrySettings(opts.retry ?? {});
  if (opts.onEnd !== undefined && (opts.onEnd.trim() === '' || opts.onEnd.includes('\0'))) {
    throw new UsageError('--on-end: expected a shell command');
  }
  return {
    ...(retry ? { retry } : {}),
    ...(opts.onEnd !== undefined ? { on_end: opts.onEnd, on_end_ran_at: null } : {}),
  };
}

function resolveCwd(dir: string | undefined): string {
  const cwd = resolve(dir ?? process.cwd());
  let ok = false;
  try {
    ok = statSync(cwd).isDirectory();
  } catch {}
  if (!ok) throw new UsageError(`--cwd ${cwd}: not a directory`);
  return cwd;
}

export function jobEnvironment(base: NodeJS.ProcessEnv, assignments: string[]): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const kv of assignments) {
    const eq = kv.indexOf('=');
    const key = eq > 0 ? kv.slice(0, eq) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`--env ${JSON.stringify(kv)}: expected KEY=VALUE`);
    env[key] = kv.slice(eq + 1);
  }
  return env;
}

/** Starts (or queues, or cancels) a job and returns its record as written. */
export async function startJob(home: Home, opts: StartOptions): Promise<JobRecord> {
  if (opts.cmd.length === 0) throw new UsageError('no command given: bgmon-start [options] -- CMD [ARG...]');
  if (opts.name !== undefined) assertName(opts.name);
  opts.after.forEach(assertName);
  const extras = retryAndHookFields(opts);
  const cwd = resolveCwd(opts.cwd);
  const env = jobEnvironment(process.env, opts.env);
  resolveExecutable(opts.cmd[0], env.PATH, cwd);
  ensureHome(home);
  const name = opts.name ?? deriveName(opts.cmd, (n) => existsSync(recordPath(home, n)));
  const held = await lock(home, name);
  try {
    const old = readRecordForReplace(home, name);
    const plan = planAfter(home, name, opts.after);
    const id = newRunId();
    Object.assign(env, { BGMON_JOB: name, BGMON_JOB_ID: id, BGMON_HOME: home.root });
    const rec: JobRecord = {
      v: 1, name, id, status: 'QUEUED', cmd: opts.cmd, cwd, pid: null,
      created_at: nowIso(), started_at: null, ended_at: null, exit_code: null, signal: null, reason: null,
      log: logPath(home, name), previous_log: old ? keepLog(home, old) : null,
      after: [...new Set(opts.after)], after_ids: plan.ids,
      host: hostname(), boot_id: null, starttime: null, sup_pid: null, sup_starttime: null, ...extras,
    };
    if (old) {
      // the replaced run's end is in its history record now
      unlinkQuietly(endPath(home, name, old.id));
      unlinkQuietly(sparePath(home, name, old.id));
    }
    removeStopMarkers(home, name);
    removeQueueEntry(home, name);
    if (plan.action === 'cancel') {
      const cancelled: JobRecord = { ...rec, status: 'CANCELLED', ended_at: nowIso(), reason: plan.reason };
      return writeEndedRecord(home, cancelled);
    }
    if (plan.action === 'queue') {
      enqueue(home, rec, env);
      return rec;
    }
    return await launch(home, rec, env);
  } finally {
    unlock(held);
  }
}

/** The run of a name about to be reused, as it stands now: refused while it is live or unreadable. */
function readRecordForReplace(home: Home, name: string): JobRecord | null {
  let old: JobRecord | null;
  try {
    old = readRecord(home, name);
  } catch (err) {
    throw new StateError(`${(err as Error).message}; remove it with bgmon-rm ${name} before reusing the name`);
  }
  if (!old) return null;
  const cur = currentState(home, old);
  if (!isTerminal(cur.status)) throw new StateError(`job ${name} is ${cur.status}; stop it or pick another name`);
  // a queued run cancelled by its predecessors ends now, as the advancing queue would record it
  return cur.status === 'CANCELLED' && cur.ended_at === null ? { ...cur, ended_at: nowIso() } : cur;
}

/**
 * Keeps the run being replaced, under its id: its record in history/ (first, so a job queued
 * after that run never finds it missing) and its log beside the new one.
 */
function keepLog(home: Home, old: JobRecord): string | null {
  const kept = previousLogPath(home, old.name, old.id);
  archiveRun(home, { ...old, log: kept });
  // only a plain file of ours is kept; a link planted at the log is dropped, never followed
  return renameOwnFile(logPath(home, old.name), kept) ? kept : null;
}

