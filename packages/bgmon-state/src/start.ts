import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ExecError, StateError, UsageError } from './errors';
import { assertName, deriveName } from './names';
import { ensureHome, logPath, previousLogPath, recordPath, stopMarkerPath, type Home } from './paths';
import { isTerminal, newRunId, nowIso, readRecord, writeRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { lock, unlock } from './lock';
import { launch } from './launch';
import { planAfter, enqueue, removeQueueEntry } from './queue';
import { renameOwnFile, unlinkQuietly } from './fsutil';

export interface StartOptions {
  name?: string;
  cwd?: string;
  /** K=V strings from --env */
  env: string[];
  after: string[];
  cmd: string[];
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

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves CMD as execvp would, so a missing command fails here (127) and not inside the job. */
export function resolveExecutable(file: string, pathVar: string | undefined, cwd: string): string {
  if (file.includes('/')) {
    const path = resolve(cwd, file);
    if (isExecutableFile(path)) return path;
    throw new ExecError(existsSync(path) ? `${file}: permission denied or not a file` : `${file}: no such file`);
  }
  for (const dir of (pathVar ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const path = resolve(cwd, dir || '.', file);
    if (isExecutableFile(path)) return path;
  }
  throw new ExecError(`${file}: command not found`);
}

/** Starts (or queues, or cancels) a job and returns its record as written. */
export async function startJob(home: Home, opts: StartOptions): Promise<JobRecord> {
  if (opts.cmd.length === 0) throw new UsageError('no command given: bgmon-start [options] -- CMD [ARG...]');
  if (opts.name !== undefined) assertName(opts.name);
  opts.after.forEach(assertName);
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
      created_at: nowIso(), started_at: null, ended_at: null, exit_code: null, signal: null,
      log: logPath(home, name), previous_log: old ? keepLog(home, old) : null,
      after: [...new Set(opts.after)], host: hostname(), boot_id: null, starttime: null, sup_pid: null, sup_starttime: null,
    };
    unlinkQuietly(stopMarkerPath(home, name));
    removeQueueEntry(home, name);
    if (plan === 'cancel') {
      const cancelled: JobRecord = { ...rec, status: 'CANCELLED', ended_at: nowIso() };
      writeRecord(home, cancelled);
      return cancelled;
    }
    if (plan === 'queue') {
      enqueue(home, rec, env);
      return rec;
    }
    return await launch(home, rec, env);
  } finally {
    unlock(held);
  }
}

/** The existing record of a name about to be reused: refused while it is live or unreadable. */
function readRecordForReplace(home: Home, name: string): JobRecord | null {
  let old: JobRecord | null;
  try {
    old = readRecord(home, name);
  } catch (err) {
    throw new StateError(`${(err as Error).message}; remove it with bgmon-rm ${name} before reusing the name`);
  }
  const status = old && currentState(home, old).status;
  if (status && !isTerminal(status)) throw new StateError(`job ${name} is ${status}; stop it or pick another name`);
  return old;
}

/** Keeps the log of the run being replaced beside the new one, under the old run's id. */
function keepLog(home: Home, old: JobRecord): string | null {
  const kept = previousLogPath(home, old.name, old.id);
  // only a plain file of ours is kept; a link planted at the log is dropped, never followed
  return renameOwnFile(logPath(home, old.name), kept) ? kept : null;
}

